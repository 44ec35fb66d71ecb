//! Database CLIs (statements in arguments or on stdin) and framework tasks that drop or reset
//! databases.

use crate::analyze::Finding;
use crate::rules::RuleId;
use crate::sql::{scan_mongo, scan_redis, scan_sql};
use crate::words::{Arg, basename, has_flag, option_values, positionals};

/// Classifies database commands; `stdin` is text known to be fed to the command.
pub(crate) fn check(name: &str, rest: &[Arg], stdin: Option<&str>, out: &mut Vec<Finding>) {
    match name {
        "psql" => {
            let cmds = option_values(rest, Some('c'), &["--command"]);
            let file = !option_values(rest, Some('f'), &["--file"]).is_empty();
            sql_args(&cmds, out);
            if cmds.is_empty()
                && !file
                && let Some(s) = stdin
            {
                out.extend(scan_sql(s));
            }
        }
        "mysql" | "mariadb" => {
            let cmds = option_values(rest, Some('e'), &["--execute"]);
            sql_args(&cmds, out);
            if cmds.is_empty()
                && let Some(s) = stdin
            {
                out.extend(scan_sql(s));
            }
        }
        "sqlite3" | "sqlite" | "duckdb" => {
            let takes = |o: &str| {
                matches!(
                    o,
                    "-cmd"
                        | "-init"
                        | "-separator"
                        | "-newline"
                        | "-nullvalue"
                        | "-vfs"
                        | "-mmap"
                        | "-maxsize"
                        | "-pagecache"
                        | "-lookaside"
                        | "-heap"
                        | "-c"
                        | "-s"
                )
            };
            let cmds = option_values(rest, None, &["-cmd"]);
            sql_args(&cmds, out);
            let inline = option_values(rest, Some('c'), &[]);
            if name == "duckdb" {
                sql_args(&inline, out);
            }
            // sqlite3 [opts] DB [SQL...]: everything after the database file is SQL.
            let pos = positionals(rest, &takes);
            let stmts: Vec<Arg> = pos
                .iter()
                .skip(1)
                .filter(|a| !a.text.starts_with('.'))
                .map(|a| (*a).clone())
                .collect();
            sql_args(&stmts, out);
            if stmts.is_empty()
                && cmds.is_empty()
                && inline.is_empty()
                && let Some(s) = stdin
            {
                out.extend(scan_sql(s));
            }
        }
        "clickhouse-client" | "clickhouse" => {
            let q = option_values(rest, Some('q'), &["--query"]);
            sql_args(&q, out);
            if q.is_empty()
                && let Some(s) = stdin
            {
                out.extend(scan_sql(s));
            }
        }
        "cockroach" | "sqlcmd" | "usql" | "snowsql" | "bq" | "mssql-cli" => {
            let mut q = option_values(rest, Some('e'), &["--execute", "--query"]);
            if name == "sqlcmd" {
                q = option_values(rest, Some('Q'), &[]);
                q.extend(option_values(rest, Some('q'), &[]));
            }
            if name == "usql" || name == "snowsql" {
                q.extend(option_values(rest, Some('c'), &["--command"]));
                q.extend(option_values(rest, Some('q'), &["--query"]));
            }
            if name == "bq" {
                q = positionals(rest, &|_| false)
                    .into_iter()
                    .skip(1)
                    .cloned()
                    .collect();
            }
            sql_args(&q, out);
            if q.is_empty()
                && let Some(s) = stdin
            {
                out.extend(scan_sql(s));
            }
        }
        "mongosh" | "mongo" => {
            let evals = option_values(rest, None, &["--eval"]);
            for e in &evals {
                if e.known {
                    out.extend(scan_mongo(&e.text));
                }
            }
            if evals.is_empty()
                && let Some(s) = stdin
            {
                out.extend(scan_mongo(s));
            }
        }
        "redis-cli" | "valkey-cli" | "keydb-cli" => {
            let takes = |o: &str| {
                matches!(
                    o,
                    "-h" | "-p"
                        | "-a"
                        | "-n"
                        | "-u"
                        | "-s"
                        | "-r"
                        | "-i"
                        | "-d"
                        | "-D"
                        | "--user"
                        | "--pass"
                        | "--pattern"
                        | "--count"
                        | "--sni"
                        | "--cacert"
                        | "--cert"
                        | "--key"
                        | "--rdb"
                        | "--functions-rdb"
                        | "--eval"
                        | "-e"
                )
            };
            let pos = positionals(rest, &takes);
            if pos.is_empty() {
                if let Some(s) = stdin {
                    for line in s.lines() {
                        out.extend(scan_redis(line.split_whitespace()));
                    }
                }
            } else {
                out.extend(scan_redis(pos.iter().map(|a| a.text.as_str())));
            }
        }
        "dropdb" => {
            if !has_flag(rest, &[], &["--help", "--version"]) {
                let db = positionals(rest, &|o| {
                    matches!(
                        o,
                        "-h" | "-p"
                            | "-U"
                            | "--host"
                            | "--port"
                            | "--username"
                            | "--maintenance-db"
                    )
                });
                out.push(Finding::new(
                    RuleId::DropDb,
                    format!(
                        "dropdb {}",
                        db.last().map(|a| a.text.as_str()).unwrap_or("")
                    ),
                ));
            }
        }
        "mysqladmin" | "mariadb-admin" => {
            let pos = positionals(rest, &|o| {
                matches!(
                    o,
                    "-u" | "-h" | "-P" | "-S" | "--user" | "--host" | "--port" | "--socket"
                )
            });
            if let Some(i) = pos.iter().position(|a| a.text.eq_ignore_ascii_case("drop")) {
                let db = pos.get(i + 1).map(|a| a.text.as_str()).unwrap_or("");
                out.push(Finding::new(RuleId::DropDb, format!("{name} drop {db}")));
            }
        }
        _ => framework(name, rest, out),
    }
}

fn sql_args(args: &[Arg], out: &mut Vec<Finding>) {
    for a in args {
        if a.known {
            out.extend(scan_sql(&a.text));
        }
    }
}

/// Framework and migration tools.
fn framework(name: &str, rest: &[Arg], out: &mut Vec<Finding>) {
    let words: Vec<&str> = rest
        .iter()
        .filter(|a| !a.is_option())
        .map(|a| a.text.as_str())
        .collect();
    let reset = |what: String, out: &mut Vec<Finding>| {
        out.push(Finding::new(RuleId::FrameworkDbReset, what))
    };
    match name {
        "prisma" => match words.as_slice() {
            ["migrate", "reset", ..] => reset("prisma migrate reset".into(), out),
            ["db", "push", ..] => {
                if has_flag(rest, &[], &["--force-reset"]) {
                    reset("prisma db push --force-reset".into(), out);
                } else if has_flag(rest, &[], &["--accept-data-loss"]) {
                    out.push(Finding::new(
                        RuleId::FrameworkDataLoss,
                        "prisma db push --accept-data-loss",
                    ));
                }
            }
            _ => {}
        },
        "rails" | "rake" => {
            let tasks = [
                "db:drop",
                "db:reset",
                "db:schema:load",
                "db:structure:load",
                "db:truncate_all",
                "db:purge",
                "db:migrate:reset",
                "db:drop:all",
                "db:purge:all",
                "db:setup",
                "db:seed:replant",
            ];
            if let Some(t) = words
                .iter()
                .find(|w| tasks.iter().any(|t| w.starts_with(t)))
            {
                reset(format!("{name} {t}"), out);
            }
        }
        "manage.py" | "django-admin" => django(&words, out),
        "python" | "python3" | "py" => {
            if let Some(script) = words.first()
                && basename(script) == "manage.py"
            {
                django(words.get(1..).unwrap_or(&[]), out);
            }
        }
        "sequelize" | "sequelize-cli"
            if words
                .iter()
                .any(|w| matches!(*w, "db:drop" | "db:migrate:undo:all" | "db:seed:undo:all")) =>
        {
            reset(format!("{name} {}", words.join(" ")), out);
        }
        "knex" if words.first() == Some(&"migrate:rollback") && has_flag(rest, &[], &["--all"]) => {
            reset("knex migrate:rollback --all".into(), out);
        }
        "typeorm" | "typeorm-ts-node-commonjs" | "typeorm-ts-node-esm"
            if words.first() == Some(&"schema:drop") =>
        {
            reset("typeorm schema:drop".into(), out);
        }
        "supabase" if words.starts_with(&["db", "reset"]) => {
            reset(format!("supabase {}", words.join(" ")), out);
        }
        "dbmate" if words.first() == Some(&"drop") => {
            reset("dbmate drop".into(), out);
        }
        "flyway" if words.contains(&"clean") => {
            reset("flyway clean".into(), out);
        }
        "liquibase"
            if words.iter().any(|w| {
                w.eq_ignore_ascii_case("drop-all") || w.eq_ignore_ascii_case("dropAll")
            }) =>
        {
            reset("liquibase drop-all".into(), out);
        }
        "alembic" if words.starts_with(&["downgrade", "base"]) => {
            reset("alembic downgrade base".into(), out);
        }
        "mix"
            if words.iter().any(|w| {
                matches!(*w, "ecto.drop" | "ecto.reset" | "ecto.rollback")
                    && (*w != "ecto.rollback" || has_flag(rest, &[], &["--all"]))
            }) =>
        {
            reset(format!("mix {}", words.join(" ")), out);
        }
        "php" | "artisan" => {
            let artisan: &[&str] = if name == "artisan" {
                &words
            } else {
                words.get(1..).unwrap_or(&[])
            };
            if (name == "artisan" || words.first().is_some_and(|w| basename(w) == "artisan"))
                && artisan.first().is_some_and(|t| {
                    matches!(
                        *t,
                        "migrate:fresh" | "migrate:reset" | "db:wipe" | "migrate:refresh"
                    )
                })
            {
                reset(format!("artisan {}", artisan.join(" ")), out);
            }
        }
        _ => {}
    }
}

fn django(words: &[&str], out: &mut Vec<Finding>) {
    match words {
        ["flush", ..] | ["reset_db", ..] | ["sqlflush", ..] => out.push(Finding::new(
            RuleId::FrameworkDbReset,
            format!("manage.py {}", words.join(" ")),
        )),
        ["migrate", _, "zero", ..] => out.push(Finding::new(
            RuleId::FrameworkDbReset,
            format!("manage.py {}", words.join(" ")),
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(name: &str, args: &[&str], stdin: Option<&str>) -> Vec<RuleId> {
        let args: Vec<Arg> = args.iter().map(|s| Arg::lit(*s)).collect();
        let mut out = Vec::new();
        check(name, &args, stdin, &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn clis() {
        assert_eq!(
            rules("psql", &["-c", "DROP TABLE x"], None),
            [RuleId::SqlDropTable]
        );
        assert_eq!(
            rules("psql", &["--command=truncate t"], None),
            [RuleId::SqlTruncate]
        );
        assert_eq!(rules("psql", &["-c", "SELECT 1"], None), []);
        assert_eq!(
            rules("psql", &["app"], Some("DROP TABLE x;\n")),
            [RuleId::SqlDropTable]
        );
        assert_eq!(rules("psql", &["-f", "x.sql"], Some("DROP TABLE x")), []);
        assert_eq!(
            rules("mysql", &["-eDROP DATABASE s"], None),
            [RuleId::SqlDropDatabase]
        );
        assert_eq!(
            rules("sqlite3", &["app.db", "DELETE FROM t"], None),
            [RuleId::SqlDeleteAll]
        );
        assert_eq!(rules("sqlite3", &["app.db", ".tables"], None), []);
        assert_eq!(
            rules("redis-cli", &["-n", "2", "FLUSHDB"], None),
            [RuleId::RedisFlush]
        );
        assert_eq!(rules("redis-cli", &["GET", "flushall"], None), []);
        assert_eq!(
            rules("mongosh", &["--eval", "db.dropDatabase()"], None),
            [RuleId::MongoDrop]
        );
        assert_eq!(
            rules("mysqladmin", &["-u", "root", "drop", "shop"], None),
            [RuleId::DropDb]
        );
        assert_eq!(rules("mysqladmin", &["status"], None), []);
    }

    #[test]
    fn frameworks() {
        assert_eq!(
            rules("prisma", &["migrate", "reset", "--force"], None),
            [RuleId::FrameworkDbReset]
        );
        assert_eq!(rules("prisma", &["migrate", "dev"], None), []);
        assert_eq!(
            rules("rails", &["db:drop"], None),
            [RuleId::FrameworkDbReset]
        );
        assert_eq!(rules("rails", &["db:migrate"], None), []);
        assert_eq!(
            rules("python", &["manage.py", "flush", "--noinput"], None),
            [RuleId::FrameworkDbReset]
        );
        assert_eq!(rules("python", &["manage.py", "migrate"], None), []);
        assert_eq!(rules("alembic", &["downgrade", "-1"], None), []);
        assert_eq!(
            rules("php", &["artisan", "migrate:fresh"], None),
            [RuleId::FrameworkDbReset]
        );
    }
}
