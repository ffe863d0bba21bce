//! The regexes plugin configurations carry (uri-blocker `block_rules`, ua-restriction lists,
//! cors `allow_origins_by_regex`): APISIX compiles them with PCRE (`re_match_compile(re, "j")`
//! at write time, `ngx.re.find(s, re, "jo")` per request: an unanchored search).
//!
//! Portico compiles them with the `regex` crate through the schema pattern cache
//! ([`portico_model::schema::pattern`]), which gives `\d`, `\w`, `\s` their ASCII (PCRE)
//! meaning. What the `regex` crate cannot run — look-around, back-references — is refused at
//! write time, like a pattern PCRE itself refuses, with a message in PCRE's shape:
//! `pcre_compile() failed: missing ) in "^b("`.

use portico_model::schema::pattern;
use regex::Regex;

/// Compiles a PCRE-style pattern, or says why it cannot be used.
pub(crate) fn compile(re: &str) -> Result<Regex, String> {
    if let Some(compiled) = pattern::compile(re) {
        return Ok(compiled);
    }
    let reason = match Regex::new(re) {
        Err(regex::Error::Syntax(text)) => pcre_reason(&text),
        Err(regex::Error::CompiledTooBig(_)) => "regular expression is too large".to_string(),
        Err(other) => other.to_string(),
        // The raw pattern compiles but its ASCII rewrite does not: rare enough to say so.
        Ok(_) => "unsupported character class".to_string(),
    };
    Err(format!("pcre_compile() failed: {reason} in \"{re}\""))
}

/// Compiles every pattern of a list; the first failure is the error.
pub(crate) fn compile_all(res: &[String]) -> Result<Vec<Regex>, String> {
    res.iter().map(|re| compile(re)).collect()
}

/// PCRE's wording for the `regex` crate's syntax errors that both engines have, and a clear
/// note for what only PCRE supports.
fn pcre_reason(text: &str) -> String {
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text)
        .trim();
    let pcre = match last {
        "unclosed group" => "missing )",
        "unopened group" => "unmatched parentheses",
        "unclosed character class" => "missing terminating ] for character class",
        "repetition operator missing expression" => "nothing to repeat",
        _ if last.contains("look-around") => "look-around assertions are not supported by Portico",
        _ if last.contains("backreferences") => "back-references are not supported by Portico",
        _ => last,
    };
    pcre.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcre_shaped_errors() {
        assert_eq!(
            compile(".+(").unwrap_err(),
            "pcre_compile() failed: missing ) in \".+(\""
        );
        assert_eq!(
            compile("a)").unwrap_err(),
            "pcre_compile() failed: unmatched parentheses in \"a)\""
        );
        assert_eq!(
            compile("[a").unwrap_err(),
            "pcre_compile() failed: missing terminating ] for character class in \"[a\""
        );
        assert_eq!(
            compile("*a").unwrap_err(),
            "pcre_compile() failed: nothing to repeat in \"*a\""
        );
        assert!(compile("a(?=b)")
            .unwrap_err()
            .contains("look-around assertions are not supported by Portico"));
        assert!(compile(r"(a)\1")
            .unwrap_err()
            .contains("back-references are not supported"));
    }

    #[test]
    fn perl_classes_are_ascii() {
        let re = compile(r"(Baiduspider)/(\d+)\.(\d+)").expect("compiles");
        assert!(re.is_match("Mozilla Baiduspider/3.0"));
        assert!(!re.is_match("Baiduspider/٣.0"));
        assert_eq!(
            compile_all(&["a".into(), "(".into()])
                .map(|v| v.len())
                .unwrap_err(),
            "pcre_compile() failed: missing ) in \"(\""
        );
    }
}
