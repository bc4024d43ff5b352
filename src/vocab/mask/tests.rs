//! The maskers never show more than about half of a value (issue 10, item 13b).

use super::*;

/// How many digits of `original` a masked form shows.
fn shown_digits(masked: &str) -> usize {
    masked.chars().filter_map(ascii_digit).count()
}

#[test]
fn phone_keeps_the_contract_form_from_eleven_digits() {
    assert_eq!(mask_phone("13812345678"), "138****5678");
    assert_eq!(mask_phone("138-1234-5678"), "138****5678");
    assert_eq!(mask_phone("１３８１２３４５６７８"), "138****5678");
}

#[test]
fn phone_of_eight_digits_shows_half_not_seven() {
    assert_eq!(mask_phone("87654321"), "87****21");
    assert_eq!(shown_digits(&mask_phone("87654321")), 4);
}

#[test]
fn phone_of_seven_digits_shows_three() {
    assert_eq!(mask_phone("7654321"), "7****21");
}

#[test]
fn phone_of_ten_digits_shows_five() {
    assert_eq!(mask_phone("0101234567"), "01****567");
}

#[test]
fn phone_shorter_than_seven_digits_is_hidden() {
    assert_eq!(mask_phone("654321"), "****");
    assert_eq!(mask_phone(""), "****");
}

#[test]
fn international_phone_hides_the_subscriber_number() {
    assert_eq!(mask_phone("+86 138 1234 5678"), "861****5678");
    assert_eq!(mask_phone("+44 20 7946 0958"), "442****0958");
    assert_eq!(mask_phone("+1 415 555 2671"), "141****2671");
    assert_eq!(mask_phone("+852 9123 4567"), "852****4567");
}

#[test]
fn no_phone_length_shows_more_than_half_below_eleven() {
    for n in 1..11 {
        let digits: String = "9876543210".chars().take(n).collect();
        let shown = shown_digits(&mask_phone(&digits));
        assert!(shown <= n / 2, "{n} digits: {shown} shown");
    }
}

#[test]
fn id_number_keeps_the_contract_form_for_eighteen_characters() {
    assert_eq!(
        Masker::IdNumber.mask("11010519491231002X"),
        "110105********002X"
    );
    assert_eq!(
        Masker::IdNumber.mask("１１０１０５１９４９１２３１００２X"),
        "110105********002X"
    );
}

#[test]
fn short_id_number_shows_at_most_half() {
    assert_eq!(Masker::IdNumber.mask("110105491231002"), "110********1002");
    assert_eq!(Masker::IdNumber.mask("12345678901"), "12******901");
    assert_eq!(Masker::IdNumber.mask("12345678"), "12****78");
    assert_eq!(Masker::IdNumber.mask("1234567"), "*******");
    assert_eq!(Masker::IdNumber.mask("12"), "****");
    for n in 1..18 {
        let id: String = "12345678901234567".chars().take(n).collect();
        let shown = shown_digits(&Masker::IdNumber.mask(&id));
        assert!(shown <= n / 2, "{n} characters: {shown} shown");
    }
}

#[test]
fn bank_card_shows_last_four_only_from_eight_digits() {
    assert_eq!(
        Masker::BankCard.mask("６２２２ ０２１２ ３４５６ ７８９０"),
        "************7890"
    );
    assert_eq!(Masker::BankCard.mask("12345678"), "****5678");
    assert_eq!(Masker::BankCard.mask("1234567"), "****");
}

#[test]
fn email_with_a_short_local_part_shows_none_of_it() {
    assert_eq!(mask_email("bob@example.com"), "b***@example.com");
    assert_eq!(mask_email("li@example.com"), "***@example.com");
    assert_eq!(mask_email("a@example.com"), "***@example.com");
    assert_eq!(mask_email("@example.com"), "***");
}

#[test]
fn one_character_name_is_hidden() {
    assert_eq!(Masker::Name.mask("李"), "*");
    assert_eq!(Masker::Name.mask("张三"), "张*");
    assert_eq!(Masker::Name.mask(""), "");
}
