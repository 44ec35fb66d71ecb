//! agent-sandbox: puts an AI coding agent's whole process tree under kernel enforcement and
//! observation. The binary (`main.rs`) is a thin CLI over these modules.

pub mod approval;
pub mod btf;
pub mod cgroup;
pub mod detect;
pub mod doctor;
pub mod ebpf;
pub mod events;
pub mod fanotify;
pub mod gate;
pub mod launch;
pub mod leftovers;
pub mod network;
pub mod policy;
pub mod poll;
pub mod seccomp;
pub mod secrets;
pub mod session;
pub mod tamper;
pub mod tracefs;
pub mod watchdog;
