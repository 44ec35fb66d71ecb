fn main() { for (k, v) in std::env::vars() { if k.starts_with("CARGO") || k.starts_with("RUST") || k == "PATH" || k.contains("LD_") { println!("{k}={v}"); } } }
