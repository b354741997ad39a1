//! sToken decoding: any text, and base64 of any bytes (to reach the JSON and field checks), is
//! either a token or a typed error — through `SToken::decode` and through `addAccount`.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use vpp_license_engine::token::SToken;
use vpp_license_engine::{Engine, EngineError, Input};
use vpp_license_engine_fuzz::{world_config, START};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
    check(&STANDARD.encode(data));
});

fn check(text: &str) {
    let decoded = SToken::decode(text);
    if let Ok(token) = &decoded {
        assert!(!token.org_name.trim().is_empty(), "a token without an organization");
        let again = SToken::decode(token.bearer().expose()).expect("a decoded token's bearer decodes again");
        assert!(again == *token, "decoding is not idempotent");
        let _ = token.check_not_expired(START);
    }
    let mut engine = Engine::new(world_config(), START).expect("valid config");
    let added = engine.handle_input(Input::AddAccount { account_id: "a1".into(), name: "A".into(), token: text.to_owned() }, START);
    match (&decoded, added) {
        (Ok(token), Ok(())) => {
            assert!(token.check_not_expired(START).is_ok(), "an expired token was added");
            assert_eq!(engine.accounts()[0].org_name, token.org_name);
        }
        (Ok(token), Err(e)) => {
            assert!(matches!(e, EngineError::Token(_)), "refused for another reason: {}", e.code());
            assert!(token.check_not_expired(START).is_err(), "a valid, unexpired token was refused: {}", e.code());
        }
        (Err(expected), Err(e)) => assert_eq!(e.code(), expected.code()),
        (Err(e), Ok(())) => panic!("a token that does not decode ({}) was added", e.code()),
    }
}
