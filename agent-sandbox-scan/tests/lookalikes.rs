//! One positive and several lookalikes per secret family, built at run time. Each lookalike is
//! a small change to a detected secret (a placeholder body, a wrong length, no word boundary, a
//! public variant), so a negative result shows that exact change is what the scanner rejects.

mod common;

use agent_sandbox_scan::{SecretKind, scan_bytes};
use common::{B62, B64, B64URL, DIGITS, HEX, Rng, UPNUM};

fn kinds(text: &str) -> Vec<SecretKind> {
    scan_bytes(text.as_bytes())
        .into_iter()
        .map(|(_, k, _)| k)
        .collect()
}

struct Case {
    family: &'static str,
    positive: String,
    kind: SecretKind,
    lookalikes: Vec<String>,
}

fn cases(r: &mut Rng) -> Vec<Case> {
    let b62_36 = r.mixed(B62, 36);
    let aws_id = r.pick(UPNUM, 16);
    let aws_secret = r.mixed(B64, 40);
    let hex64 = r.pick(HEX, 64);
    let hex32 = r.pick(HEX, 32);
    let pem_body: Vec<String> = (0..20).map(|_| r.mixed(B64, 64)).collect();
    let pem = |label: &str, body: &str| {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    };
    let body = pem_body.join("\n");
    vec![
        Case {
            family: "private key",
            positive: pem("OPENSSH PRIVATE KEY", &body),
            kind: SecretKind::PrivateKey,
            lookalikes: vec![
                pem("PUBLIC KEY", &body),
                pem("CERTIFICATE", &body),
                pem("OPENSSH PRIVATE KEY", "..."),
                pem("OPENSSH PRIVATE KEY", &format!("{}...", &pem_body[0][..30])),
                format!(
                    "const HEADER: &str = \"-----BEGIN {}PRIVATE KEY-----\";",
                    "RSA "
                ),
                // No END line: a header pasted into prose.
                format!("-----BEGIN PRIVATE KEY-----\n{}\n", pem_body[0]),
                // A PEM parser: BEGIN and END markers with code (and a base64 test vector)
                // between them.
                format!(
                    "BEGIN = \"-----BEGIN {}PRIVATE KEY-----\"\n\
                     def parse(s):\n\
                     \x20   body = s.split(BEGIN)[1].split(END)[0]\n\
                     \x20   return base64.b64decode(body.replace(\"\\n\", \"\")) # e.g. {}\n\
                     END = \"-----END PRIVATE KEY-----\"\n",
                    "EC ", pem_body[1]
                ),
            ],
        },
        Case {
            family: "AWS access key id",
            positive: format!("id = AKIA{aws_id}\n"),
            kind: SecretKind::AwsAccessKeyId,
            lookalikes: vec![
                "id = AKIAIOSFODNN7EXAMPLE\n".into(),
                format!("id = AKIA{}\n", &aws_id[..15]),
                format!("id = XAKIA{aws_id}\n"),
                format!("id = AKIA{aws_id}Q\n"),
                format!("id = AKIA{}\n", "A".repeat(16)),
            ],
        },
        Case {
            family: "AWS secret access key",
            positive: format!("aws_secret_access_key = {aws_secret}\n"),
            kind: SecretKind::AwsSecretAccessKey,
            lookalikes: vec![
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".into(),
                "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n".into(),
                // 40 base64 characters with no access key id nearby and no telling name.
                format!("checksum = {aws_secret}\n"),
            ],
        },
        Case {
            family: "GitHub",
            positive: format!("ref: ghp_{b62_36}\n"),
            kind: SecretKind::GitHubToken,
            lookalikes: vec![
                format!("ref: ghp_{}\n", &b62_36[..35]),
                format!("ref: xghp_{b62_36}\n"),
                format!("ref: ghp_{}\n", "x".repeat(36)),
                "ref: ghp_1234567890abcdefghijklmnopqrstuvwxyz\n".into(),
                format!("ref: ghz_{b62_36}\n"),
                format!("github_pat_{}\n", "X".repeat(82)),
            ],
        },
        Case {
            family: "GitLab",
            positive: format!("glpat-{}\n", r.mixed(B62, 20)),
            kind: SecretKind::GitLabToken,
            lookalikes: vec![
                format!("glpat-{}\n", r.mixed(B62, 19)),
                "glpat-XXXXXXXXXXXXXXXXXXXX\n".into(),
                "glpat-your-personal-access-token\n".into(),
            ],
        },
        Case {
            family: "Slack token",
            positive: format!(
                "xoxb-{}-{}-{}\n",
                r.pick(DIGITS, 12),
                r.pick(DIGITS, 13),
                r.mixed(B62, 24)
            ),
            kind: SecretKind::SlackToken,
            lookalikes: vec![
                "xoxb-your-bot-token-goes-here\n".into(),
                format!("xoxb-{}\n", r.pick(DIGITS, 30)),
                format!("xoxq-{}-{}\n", r.pick(DIGITS, 12), r.mixed(B62, 24)),
                "xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx\n".into(),
            ],
        },
        Case {
            family: "Slack webhook",
            positive: format!(
                "https://hooks.slack.com/services/T{}/B{}/{}\n",
                r.pick(UPNUM, 8),
                r.pick(UPNUM, 8),
                r.mixed(B62, 24)
            ),
            kind: SecretKind::SlackWebhook,
            lookalikes: vec![
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX\n"
                    .into(),
                "https://hooks.slack.com/services/\n".into(),
                "see https://hooks.slack.com/ for details\n".into(),
            ],
        },
        Case {
            family: "Stripe",
            positive: format!("sk_live_{}\n", r.mixed(B62, 24)),
            kind: SecretKind::StripeKey,
            lookalikes: vec![
                format!("sk_test_{}\n", r.mixed(B62, 24)),
                format!("pk_live_{}\n", r.mixed(B62, 24)),
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx\n".into(),
                format!("sk_live_{}\n", r.mixed(B62, 12)),
            ],
        },
        Case {
            family: "OpenAI",
            positive: format!("key=sk-proj-{}\n", r.mixed(B64URL, 100)),
            kind: SecretKind::OpenAiKey,
            lookalikes: vec![
                format!("key=sk-proj-{}\n", r.mixed(B64URL, 20)),
                format!("key=sk-{}\n", r.mixed(B62, 32)),
                format!("task-{}\n", r.mixed(B62, 48)),
                format!("disk-{}\n", r.mixed(B62, 48)),
                "new RegExp(\"^sk-[A-Za-z0-9]{48}$\")\n".into(),
                "key=sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n".into(),
            ],
        },
        Case {
            family: "OpenAI legacy",
            positive: format!("sk-{}T3BlbkFJ{}\n", r.mixed(B62, 20), r.mixed(B62, 20)),
            kind: SecretKind::OpenAiKey,
            lookalikes: vec![format!("sk-{}\n", r.pick(b"abcdefghijklmnop", 48))],
        },
        Case {
            family: "Anthropic",
            positive: format!("sk-ant-api03-{}AA\n", r.mixed(B64URL, 93)),
            kind: SecretKind::AnthropicKey,
            lookalikes: vec![
                "sk-ant-api03-...\n".into(),
                format!("sk-ant-api03-{}\n", "x".repeat(95)),
                format!("sk-ant-{}\n", r.mixed(B64URL, 20)),
            ],
        },
        Case {
            family: "Google",
            positive: format!("\"AIza{}\"\n", r.mixed(B64URL, 35)),
            kind: SecretKind::GoogleApiKey,
            lookalikes: vec![
                format!("\"AIza{}\"\n", r.mixed(B64URL, 34)),
                format!("\"AIza{}\"\n", r.mixed(B64URL, 36)),
                "\"AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"\n".into(),
                format!("\"{}AIza{}\"\n", r.mixed(B62, 10), r.mixed(B64URL, 35)),
            ],
        },
        Case {
            family: "npm",
            positive: format!(
                "//registry.npmjs.org/:_authToken=npm_{}\n",
                r.mixed(B62, 36)
            ),
            kind: SecretKind::NpmToken,
            lookalikes: vec![
                "npm_config_registry_url_for_the_private_mirror_x\n".into(),
                format!("my_npm_{}\n", r.mixed(B62, 36)),
                format!("npm_{}\n", r.mixed(B62, 35)),
            ],
        },
        Case {
            family: "PyPI",
            positive: format!("password = pypi-AgEIcHlwaS5vcmc{}\n", r.mixed(B64URL, 150)),
            kind: SecretKind::PyPiToken,
            lookalikes: vec![
                format!("pypi-AgEIcHlwaS5vcmc{}\n", r.mixed(B64URL, 20)),
                "pypi-AgEIcHlwaS5vcmc<your-token>\n".into(),
            ],
        },
        Case {
            family: "Hugging Face",
            positive: format!("HF_TOKEN=hf_{}\n", r.mixed_letters(34)),
            kind: SecretKind::HuggingFaceToken,
            lookalikes: vec![
                format!("hf_{}\n", r.pick(b"abcdefghijklmnopqrstuvwxyz", 34)),
                format!("use_hf_{}\n", r.mixed_letters(34)),
                "hf_hub_download_for_the_tokenizer_files\n".into(),
                format!("hf_{}\n", "x".repeat(34)),
            ],
        },
        Case {
            family: "SendGrid",
            positive: format!("SG.{}.{}\n", r.mixed(B64URL, 22), r.mixed(B64URL, 43)),
            kind: SecretKind::SendGridKey,
            lookalikes: vec![
                format!("SG.{}.{}\n", r.mixed(B64URL, 22), r.mixed(B64URL, 42)),
                format!("SG.{}\n", r.mixed(B64URL, 66)),
                "SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".into(),
            ],
        },
        Case {
            family: "Twilio",
            positive: format!("TWILIO_API_KEY=SK{hex32}\n"),
            kind: SecretKind::TwilioApiKey,
            lookalikes: vec![
                format!("TASK{hex32}\n"),
                format!("SK{}\n", &hex32[..31]),
                format!("SK{}\n", hex32.to_uppercase()),
                format!("SK{}\n", "0".repeat(32)),
            ],
        },
        Case {
            family: "DigitalOcean",
            positive: format!("dop_v1_{hex64}\n"),
            kind: SecretKind::DigitalOceanToken,
            lookalikes: vec![
                format!("dop_v1_{}\n", &hex64[..63]),
                format!("dop_v1_{}\n", "0".repeat(64)),
                format!("dop_v2_{hex64}\n"),
            ],
        },
        Case {
            family: "Fly.io",
            positive: format!("FLY_API_TOKEN=\"FlyV1 fm2_{}\"\n", r.mixed(B64, 200)),
            kind: SecretKind::FlyToken,
            lookalikes: vec![
                "FLY_API_TOKEN=\"FlyV1 fm2_...\"\n".into(),
                format!("fo1_{}\n", r.mixed(B64URL, 42)),
            ],
        },
        Case {
            family: "URL password",
            positive: format!(
                "postgres://app:{}@db.internal:5432/prod\n",
                r.mixed(B62, 20)
            ),
            kind: SecretKind::UrlPassword,
            lookalikes: vec![
                "postgres://user:password@localhost:5432/mydb\n".into(),
                "postgres://postgres:postgres@localhost/app\n".into(),
                "redis://:${REDIS_PASSWORD}@redis:6379\n".into(),
                "http://localhost:8080/path?x=1\n".into(),
                "git@github.com:org/repo.git\n".into(),
                format!("https://user:{}@example.com/\n", r.mixed(B62, 20)),
                "https://alice:hunter2@host/\n".into(),
                "amqp://guest:guest@localhost:5672/\n".into(),
            ],
        },
        Case {
            family: "assignment",
            positive: format!("DATABASE_PASSWORD={}\n", r.mixed(B62, 24)),
            kind: SecretKind::Assignment,
            lookalikes: vec![
                format!("DATABASE_PASSWORD={}\n", r.mixed(B62, 15)),
                "DATABASE_PASSWORD=changeme-changeme\n".into(),
                "DATABASE_PASSWORD=${DATABASE_PASSWORD}\n".into(),
                "DATABASE_PASSWORD=<database-password>\n".into(),
                "DATABASE_PASSWORD=this-is-my-long-password\n".into(),
                "DATABASE_PASSWORD=DATABASE_PASSWORD_FROM_VAULT\n".into(),
                format!("DATABASE_PASSWORD_FILE=/run/secrets/{}\n", r.mixed(B62, 24)),
                format!("CACHE_KEY={}\n", r.mixed(B62, 24)),
                format!("PUBLIC_KEY={}\n", r.mixed(B62, 24)),
                format!("monkey = \"{}\"\n", r.mixed(B62, 24)),
                format!("key = \"{}\"\n", r.mixed(B62, 24)),
                format!("SESSION_KEY={}\n", "3f2b8c1e-9d4a-4e7b-a1c2-7d9e0f1a2b3c"),
                format!("\"integrity\": \"sha512-{}==\"\n", r.mixed(B64, 86)),
                "let token = compute_session_token(user);\n".into(),
                "api_key: ApiKeyWithAVeryLongTypeName2 = x;\n".into(),
                "password = self.config.database.password_value\n".into(),
            ],
        },
    ]
}

#[test]
fn each_family_has_a_positive_and_rejects_its_lookalikes() {
    let mut r = Rng::new(7);
    let all = cases(&mut r);
    assert_eq!(all.len(), 21);
    let mut failures = Vec::new();
    for c in &all {
        let got = kinds(&c.positive);
        if got != vec![c.kind] {
            failures.push(format!(
                "{}: positive {:?} gave {got:?}",
                c.family, c.positive
            ));
        }
        for l in &c.lookalikes {
            let got = kinds(l);
            if !got.is_empty() {
                failures.push(format!("{}: lookalike {l:?} gave {got:?}", c.family));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn aws_secret_is_found_next_to_its_key_id_without_a_telling_name() {
    let mut r = Rng::new(8);
    let id = format!("AKIA{}", r.pick(UPNUM, 16));
    let secret = r.mixed(B64, 40);
    let csv = format!("User name,Access key ID,Secret access key\ndeploy,{id},{secret}\n");
    let found = scan_bytes(csv.as_bytes());
    let k: Vec<(u64, SecretKind)> = found.iter().map(|(l, k, _)| (*l, *k)).collect();
    assert_eq!(
        k,
        vec![
            (2, SecretKind::AwsAccessKeyId),
            (2, SecretKind::AwsSecretAccessKey)
        ]
    );
    // Far away (10 lines later) the same 40 characters are not attributed to the key id.
    let far = format!("id={id}\n{}checksum={secret}\n", "x\n".repeat(10));
    let k: Vec<SecretKind> = kinds(&far);
    assert_eq!(k, vec![SecretKind::AwsAccessKeyId]);
}

#[test]
fn line_numbers_and_redaction() {
    let mut r = Rng::new(9);
    let gh = format!("ghp_{}", r.mixed(B62, 36));
    let text = format!(
        "a\nb\n\nx = \"{gh}\"\n\n\nGITLAB=glpat-{}\n",
        r.mixed(B62, 20)
    );
    let found = scan_bytes(text.as_bytes());
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].0, found[0].1), (4, SecretKind::GitHubToken));
    assert_eq!(found[0].2, "ghp_… (40 chars)");
    assert_eq!((found[1].0, found[1].1), (7, SecretKind::GitLabToken));
    assert_eq!(found[1].2, "glpat-… (26 chars)");
}

#[test]
fn scanning_never_panics_on_truncated_or_random_input() {
    let mut r = Rng::new(10);
    let mut seeds: Vec<String> = cases(&mut r)
        .into_iter()
        .flat_map(|c| std::iter::once(c.positive).chain(c.lookalikes))
        .collect();
    seeds.push("-----BEGIN PRIVATE KEY-----".into());
    let mut checked = 0usize;
    for s in &seeds {
        let b = s.as_bytes();
        // Every prefix and every suffix: validators look both ways from an anchor.
        for i in 0..=b.len() {
            let _ = scan_bytes(&b[..i]);
            let _ = scan_bytes(&b[i..]);
            checked += 2;
        }
    }
    // Random bytes sprinkled with anchors.
    let anchors: [&[u8]; 12] = [
        b"AKIA",
        b"ghp_",
        b"sk-",
        b"://",
        b"KEY",
        b"token",
        b"PRIVATE KEY",
        b"-----BEGIN ",
        b"-----END",
        b"@",
        b"=",
        b"SK",
    ];
    for _ in 0..3000 {
        let mut buf = Vec::new();
        for _ in 0..r.below(40) {
            if r.below(3) == 0 {
                buf.extend_from_slice(anchors[r.below(anchors.len())]);
            } else {
                let n = r.below(12);
                buf.extend((0..n).map(|_| r.next() as u8));
            }
        }
        for (line, _, red) in scan_bytes(&buf) {
            assert!(line >= 1);
            assert!(red.ends_with(" chars)"));
        }
        checked += 1;
    }
    assert!(checked > 3000);
}
