//! The redactor: what it masks, what it leaves readable, and a property test over the spellings
//! a client could use to slip personal data past it (issue 10, item 10).

use super::*;
use proptest::prelude::*;

#[test]
fn masks_personal_data_in_text() {
    assert_eq!(redact("call 13812345678 now"), "call 138****5678 now");
    assert_eq!(
        redact("/v1/customers/13812345678/orders"),
        "/v1/customers/138****5678/orders"
    );
    assert_eq!(redact("intl +8613812345678"), "intl +861****5678");
    assert_eq!(
        redact("mail alice.b@example.com."),
        "mail a***@example.com."
    );
    assert_eq!(
        redact("id 11010519491231002X ok"),
        "id 110105********002X ok"
    );
    assert_eq!(redact("card 4111111111111111"), "card ************1111");
    assert_eq!(
        redact("order O2024010100001234 C1234567"),
        "order O2024010100001234 C1234567"
    );
    assert_eq!(
        redact("id 110105194912310021 bad check"),
        "id 110105194912310021 bad check"
    );
    assert_eq!(
        redact("4111111111111112 fails luhn"),
        "4111111111111112 fails luhn"
    );
    assert!(matches!(redact("nothing here 12345"), Cow::Borrowed(_)));
}

#[test]
fn phone_with_separators_is_masked_whole() {
    assert_eq!(redact("tel 138-1234-5678."), "tel 138****5678.");
    assert_eq!(redact("tel 138 1234 5678"), "tel 138****5678");
    assert_eq!(redact("tel 138.1234.5678"), "tel 138****5678");
    assert_eq!(redact("tel 138 - 1234 - 5678"), "tel 138****5678");
    assert_eq!(redact("tel +86 138 1234 5678"), "tel +861****5678");
    assert_eq!(redact("tel (+86)13812345678"), "tel (+861****5678");
    assert_eq!(redact("tel +86-138-1234-5678!"), "tel +861****5678!");
}

/// The country code written without its `+` (`86…`, `0086…`), glued or separated: the Luhn
/// check that catches some of them as card numbers is not what hides them.
#[test]
fn a_country_code_without_its_plus_is_still_a_phone_number() {
    for (text, masked) in [
        ("tel 8613912345670", "tel 861****5670"),
        ("tel 86 139 1234 5671", "tel 861****5671"),
        ("tel 008613912345672", "tel 008****5672"),
        (
            "/v1/customers/8613912345673/orders",
            "/v1/customers/861****5673/orders",
        ),
    ] {
        assert_eq!(redact(text), masked, "{text}");
    }
    // One digit short of a number after the code stays as it is, and so does an id that
    // holds such a run glued to its letters (a card number would not be masked there either).
    assert_eq!(redact("ref 861391234567"), "ref 861391234567");
    assert_eq!(redact("ORD8613912345670"), "ORD8613912345670");
}

#[test]
fn full_width_digits_are_masked() {
    assert_eq!(redact("电话１３８１２３４５６７８"), "电话138****5678");
    assert_eq!(
        redact("电话 １３８－１２３４－５６７８"),
        "电话 138****5678"
    );
    assert_eq!(
        redact("卡号 ６２２２０２１２３４５６７８９０１２８"),
        "卡号 ***************0128"
    );
    assert_eq!(
        redact("身份证 １１０１０５１９４９１２３１００２Ｘ"),
        "身份证 110105********002X"
    );
    assert_eq!(redact("mail bob＠example.com"), "mail b***@example.com");
}

#[test]
fn id_and_card_with_separators_are_masked() {
    assert_eq!(redact("id 110105 19491231 002X"), "id 110105********002X");
    assert_eq!(
        redact("card 4111 1111 1111 1111 exp"),
        "card ************1111 exp"
    );
    assert_eq!(
        redact("card 6222-0212-3456-7890-128"),
        "card ***************0128"
    );
}

#[test]
fn mobile_and_id_glued_to_letters_are_masked_cards_are_not() {
    assert_eq!(redact("tel13812345678"), "tel138****5678");
    assert_eq!(redact("u13812345678x"), "u138****5678x");
    assert_eq!(redact("id11010519491231002Xz"), "id110105********002Xz");
    // One random number in ten passes Luhn: a glued one is an id, not a card.
    assert_eq!(redact("O4111111111111111"), "O4111111111111111");
}

#[test]
fn order_ids_dates_and_addresses_stay_readable() {
    for text in [
        "order O2024010100001234 C1234567",
        "/v1/orders/O2025010100000001",
        "2025-01-01 12:30:45.123",
        "\"ts\":\"2026-12-02T00:38:39.123Z\",\"duration_ms\":1.234,\"bytes_out\":210",
        "client 203.0.113.7 port 44321",
        "og-1234abcd-42",
    ] {
        assert_eq!(redact(text), text);
    }
}

#[test]
fn a_number_found_next_to_a_mask_is_masked_too() {
    // The first pass shows `1391` of the first phone; it joins `2345678` into a second one.
    let out = redact("13800001391 2345678");
    assert!(
        !out.contains("13912345678") && !out.contains("1391 2345678"),
        "{out}"
    );
}

#[test]
fn text_still_changing_after_the_pass_budget_has_every_digit_hidden() {
    let text = "13800001391 2345678";
    assert_eq!(
        numbers::mask_numbers_within(text, 1),
        "*".repeat("138****139****5678".len())
    );
}

#[test]
fn percent_encoded_path_is_checked_decoded() {
    assert_eq!(
        redact_path("/v1/customers/bob%40example.com/orders"),
        "/v1/customers/b***@example.com/orders"
    );
    assert_eq!(
        redact_path("/v1/customers/%31%33%38%31%32%33%34%35%36%37%38/orders"),
        "/v1/customers/138****5678/orders"
    );
    assert_eq!(
        redact_path("/v1/customers/bob%2540example.com/orders"),
        "/v1/customers/b***@example.com/orders",
        "encoded twice"
    );
    assert_eq!(
        redact_path("/v1/customers/%EF%BC%91%EF%BC%93%EF%BC%98%2012345678/orders"),
        "/v1/customers/138****5678/orders"
    );
    assert_eq!(
        redact_path("/v1/customers/%E5%BC%A0%20138-1234-5678"),
        "/v1/customers/%E5%BC%A0%20138****5678"
    );
}

#[test]
fn percent_encoded_path_without_personal_data_is_recorded_as_sent() {
    for path in [
        "/v1/customers/C0000001/orders",
        "/v1/orders/O2025%2D01",
        "/v1/x/%zz%4",
        "/v1/x/%FF%FE",
    ] {
        assert!(
            matches!(redact_path(path), Cow::Borrowed(p) if p == path),
            "{path}"
        );
    }
}

#[test]
fn integer_and_number_query_values_are_checked() {
    let phone = serde_json::Number::from(13812345678u64);
    assert_eq!(redact_number(&phone).as_deref(), Some("138****5678"));
    let card = serde_json::Number::from(4111111111111111u64);
    assert_eq!(redact_number(&card).as_deref(), Some("************1111"));
    let float = serde_json::Number::from_f64(13812345678.0).unwrap();
    assert_eq!(redact_number(&float).as_deref(), Some("138****5678.0"));
    let negative = serde_json::Number::from(-13812345678i64);
    assert_eq!(redact_number(&negative).as_deref(), Some("-138****5678"));
    assert_eq!(redact_number(&serde_json::Number::from(20)), None);
    assert_eq!(
        redact_number(&serde_json::Number::from(2024010100001234u64)),
        None
    );
}

#[test]
fn extension_methods_are_recorded_as_other() {
    assert_eq!(recorded_method(&http::Method::GET), "GET");
    assert_eq!(recorded_method(&http::Method::PATCH), "PATCH");
    for m in ["13812345678", "X-13812345678", "get", "PROPFIND"] {
        let method = http::Method::from_bytes(m.as_bytes()).unwrap();
        assert_eq!(recorded_method(&method), "OTHER", "{m}");
    }
}

#[test]
fn log_writer_redacts_separated_and_full_width_numbers() {
    let mut writer = make_writer();
    writer
        .write_all("request for 138 1234 5678 and １３９１２３４５６７８\n".as_bytes())
        .unwrap();
    let mut sink = Vec::new();
    writer.write_redacted(&mut sink).unwrap();
    writer.buffer.clear();
    assert_eq!(
        String::from_utf8(sink).unwrap(),
        "request for 138****5678 and 139****5678\n"
    );
}

#[test]
fn check_digits() {
    assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
    assert_eq!(resident_id_check_char("1101051949123100"), None);
    assert_eq!(luhn_check_digit("411111111111111"), 1);
    assert!(luhn(&format!(
        "622202123456789012{}",
        luhn_check_digit("622202123456789012")
    )));
}

#[test]
fn sensitive_params_choose_their_masker() {
    assert_eq!(mask_param("phone", "13812345678"), "138****5678");
    assert_eq!(mask_param("email", "bob@example.com"), "b***@example.com");
    assert_eq!(
        mask_param("id_number", "11010519491231002X"),
        "110105********002X"
    );
    assert_eq!(mask_param("secret_code", "hunter2"), "***");
}

/// Separators a client might put inside a number (at most three in a row).
const SEPARATORS: &[&str] = &[
    "", "", "", "", " ", "-", ".", "  ", " - ", "(", ")", "/", "_", "\u{3000}", "－", "\u{a0}",
];

/// Text around the value; never a digit, a `+` or an ASCII letter right next to it.
const BOUNDARIES: &[&str] = &[" ", "=", ":", "/", "\"", ",", "手机", "?q=", " (", "#"];

/// How each digit is spelled: full-width or not, and the separator after it.
fn spelling() -> impl Strategy<Value = Vec<(bool, &'static str)>> {
    prop::collection::vec(
        (any::<bool>(), prop::sample::select(SEPARATORS)),
        MAX_SPELLED,
    )
}

const MAX_SPELLED: usize = 20;

fn spell(digits: &str, how: &[(bool, &'static str)]) -> String {
    let mut out = String::new();
    let n = digits.chars().count();
    for (i, (c, (wide, sep))) in digits.chars().zip(how).enumerate() {
        match c.to_digit(10) {
            Some(d) if *wide => out.extend(char::from_u32(0xFF10 + d)),
            _ => out.push(c),
        }
        if i + 1 < n && c.is_ascii_digit() && digits.as_bytes()[i + 1].is_ascii_digit() {
            out.push_str(sep);
        }
    }
    out
}

/// The output as a reader would take it: full-width digits as ASCII, separators gone, the
/// spellings of `@` as one.
fn normalise(text: &str) -> String {
    text.replace("%40", "@")
        .chars()
        .filter_map(|c| match c {
            '＠' => Some('@'),
            'Ｘ' | 'ｘ' | 'x' => Some('X'),
            c if crate::vocab::mask::ascii_digit(c).is_some() => {
                crate::vocab::mask::ascii_digit(c).map(char::from)
            }
            c if SEPARATORS.iter().any(|s| s.contains(c)) => None,
            c => Some(c.to_ascii_lowercase()),
        })
        .collect()
}

/// Personal data to hide, the digit sequences that must not survive whole, and whether it is
/// masked only when not glued to letters (a bank card, a mobile after a `+`-less country code).
fn personal_data() -> impl Strategy<Value = (String, Vec<String>, bool)> {
    let phone = "1[3-9][0-9]{9}".prop_map(|p| (p.clone(), vec![p], false));
    let intl = ("(\\+86 ?|\\(\\+86\\) ?|\\+86-)", "1[3-9][0-9]{9}")
        .prop_map(|(cc, p)| (format!("{cc}{p}"), vec![p.clone(), format!("86{p}")], false));
    let id = (
        "[1-6][0-9]{5}(19[5-9][0-9]|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}",
        prop::bool::ANY,
    )
        .prop_map(|(first17, lower)| {
            let check = resident_id_check_char(&first17).unwrap_or('0');
            let check = if lower {
                check.to_ascii_lowercase()
            } else {
                check
            };
            (format!("{first17}{check}"), vec![first17], false)
        });
    let card = "[3-6][0-9]{11,17}".prop_map(|payload| {
        let card = format!("{payload}{}", luhn_check_digit(&payload));
        (card.clone(), vec![card], true)
    });
    let bare_code = ("(86|0086)[ -]?", "1[3-9][0-9]{9}")
        .prop_map(|(cc, p)| (format!("{cc}{p}"), vec![p.clone()], true));
    prop_oneof![phone, intl, bare_code, id, card]
}

fn email() -> impl Strategy<Value = (String, String)> {
    (
        "[a-z][a-z0-9._]{0,10}[a-z0-9]",
        prop::sample::select(&["@", "＠", "%40"][..]),
        "[a-z][a-z0-9-]{0,8}\\.(com|cn|org|com\\.cn)",
    )
        .prop_map(|(local, at, domain)| {
            (format!("{local}{at}{domain}"), format!("{local}@{domain}"))
        })
}

proptest! {
    #[test]
    fn no_spelling_lets_a_whole_number_through(
        (value, secrets, _) in personal_data(),
        how in spelling(),
        prefix in "[ -~]{0,12}",
        suffix in "[ -~]{0,12}",
        before in prop::sample::select(BOUNDARIES),
        after in prop::sample::select(BOUNDARIES),
    ) {
        let text = format!("{prefix}{before}{}{after}{suffix}", spell(&value, &how));
        let out = normalise(&redact(&text));
        for secret in &secrets {
            prop_assert!(!out.contains(secret.as_str()), "`{text}` became `{out}`");
        }
    }

    #[test]
    fn mobiles_and_ids_glued_to_letters_are_masked(
        (value, secrets, card) in personal_data(),
        how in spelling(),
        prefix in "[A-Za-z]{1,4}",
        suffix in "[A-Za-z]{0,4}",
    ) {
        // Cards glued to letters are the documented exception (order ids).
        prop_assume!(!card);
        let text = format!("{prefix}{}{suffix}", spell(&value, &how));
        let out = normalise(&redact(&text));
        for secret in &secrets {
            prop_assert!(!out.contains(secret.as_str()), "`{text}` became `{out}`");
        }
    }

    #[test]
    fn no_spelling_lets_an_email_through(
        (spelled, email) in email(),
        prefix in "[ -~]{0,12}",
        before in prop::sample::select(BOUNDARIES),
        after in prop::sample::select(BOUNDARIES),
    ) {
        let text = format!("{prefix}{before}{spelled}{after}");
        let out = normalise(&redact(&text));
        prop_assert!(!out.contains(&email), "`{text}` became `{out}`");
    }

    #[test]
    fn no_percent_encoding_lets_a_path_value_through(
        (value, secrets, _) in personal_data(),
        how in spelling(),
        twice in any::<bool>(),
    ) {
        let mut encoded: String = spell(&value, &how)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        if twice {
            encoded = encoded.replace('%', "%25");
        }
        let path = format!("/v1/customers/{encoded}/orders");
        let recorded = redact_path(&path);
        let mut read = recorded.to_string();
        for _ in 0..3 {
            read = crate::vocab::percent::decode(&read, false).map(|d| d.into_owned()).unwrap_or(read);
        }
        let out = normalise(&read);
        for secret in &secrets {
            prop_assert!(!out.contains(secret.as_str()), "`{path}` became `{recorded}`");
        }
    }

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,64}", wide in "[０-９ ＋+()Xx@.-]{0,40}") {
        let _ = redact(&text);
        let _ = redact(&wide);
        let _ = redact_path(&text);
        let _ = redact_path(&format!("/{wide}%{text}"));
    }

    #[test]
    fn never_panics_and_never_leaks_a_mobile(prefix in "[ -~]{0,20}", n in 3u8..=9, rest in "[0-9]{9}", suffix in "[ -~]{0,20}") {
        let phone = format!("1{n}{rest}");
        let text = format!("{prefix} {phone} {suffix}");
        let out = redact(&text);
        prop_assert!(!out.contains(&phone));
    }
}

/// `redact_number` skips integers of up to seven digits unread: the text of every such integer
/// (either sign) is one the detectors leave alone, so the shortcut changes no record.
#[test]
fn integers_below_eight_digits_are_left_alone_by_the_detectors() {
    for n in (0..10_000_000i64)
        .step_by(997)
        .chain(9_999_000..10_000_000)
        .chain([0, 1, 9_999_999])
    {
        for n in [n, -n] {
            assert!(
                matches!(redact(&n.to_string()), Cow::Borrowed(_)),
                "{n} would be masked"
            );
            assert_eq!(redact_number(&serde_json::Number::from(n)), None);
        }
    }
    // Eight digits are read again.
    let eight = serde_json::Number::from(13_812_345i64);
    assert_eq!(
        redact_number(&eight),
        match redact("13812345") {
            Cow::Owned(masked) => Some(masked),
            Cow::Borrowed(_) => None,
        }
    );
}
