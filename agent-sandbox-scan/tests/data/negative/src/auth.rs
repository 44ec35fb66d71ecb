//! Code that talks about secrets without containing any.

use std::env;

const TOKEN_KIND: &str = "bearer";
const PEM_HEADER: &str = "-----BEGIN RSA PRIVATE KEY-----";
pub const PRIVATE_KEY_LABEL: &str = "-----BEGIN PRIVATE KEY-----";
pub const DefaultKey: KeyInheritOptions = 1;
pub const CREDENTIAL_KEY: MSV1_0_CREDENTIAL_KEY_TYPE = MSV1_0_CREDENTIAL_KEY_TYPE_V2;

pub struct Config {
    pub api_key: String,
    pub token: Option<SecretString>,
    password: Box<dyn Fn() -> String>,
    pub secret_key_base: Vec<u8>,
}

fn load() -> Result<Config, Error> {
    let api_key = env::var("API_KEY")?;
    let token = env::var("GITHUB_TOKEN").ok().map(SecretString::new);
    let password = prompt_password("Password: ")?;
    let secret_key = derive_key(&password, SALT_LENGTH_IN_BYTES)?;
    let access_token = self.client.exchange_code(code).request_async(http_client).await?;
    let refresh_token = response.refresh_token.as_ref().map(|t| t.secret().clone());
    let session_token = SessionTokenBuilder::default_with_long_lifetime;
    let key = table[index_of_the_first_free_slot];
    let private_key = PrivateKeyDer::from_pem_slice(PEM_HEADER.as_bytes())?;
    if token == expected_token_for_this_request_id { return Err(Error::Replay); }
    assert_eq!(TOKEN_KIND, "bearer");
    let url = format!("https://{}:{}@{}", user, password, host);
    let api_key_header = HeaderName::from_static("x-api-key");
    todo!()
}

fn monkey_patch(turkey: &str, donkey: &str) -> String {
    let keyboard = format!("{turkey}{donkey}");
    let hotkey = "Ctrl+Shift+K";
    keyboard + hotkey
}
