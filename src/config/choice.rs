//! Keys with a fixed set of choices (`min_version`, `client_auth`, `backend`, `fsync`, ...),
//! read as enums. An unknown choice is not a read error: it is kept as written, so the rest of its
//! section is still read and checked, and `compile` reports it at its key with a message that
//! lists the choices (the same message and location as when these keys were plain strings).

use serde::{Deserialize, Deserializer};

/// An enum whose choices are written as fixed names in the policy.
pub trait Named: Sized + Copy + 'static {
    /// Every choice, with its name as written.
    const NAMES: &'static [(&'static str, Self)];

    /// The choice written as `name`, if there is one.
    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, choice)| *choice)
    }
}

/// A choice as written: a known one, or the text of an unknown one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<T> {
    /// One of the choices the key allows.
    Known(T),
    /// Anything else, kept as written so the problem can quote it.
    Unknown(String),
}

impl<'de, T: Named> Deserialize<'de> for Choice<T> {
    /// Reads a string (a value of another type fails exactly as a `String` key would).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match T::from_name(&text) {
            Some(choice) => Choice::Known(choice),
            None => Choice::Unknown(text),
        })
    }
}

/// Declares a choice enum with the names it is written as.
macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $crate::config::choice::Named for $name {
            const NAMES: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }
    };
}
pub(crate) use named;

#[cfg(test)]
mod tests {
    use super::*;

    named! {
        /// A test choice.
        Colour { Red = "red", Dark = "dark-blue" }
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        colour: Option<Choice<Colour>>,
    }

    fn read(text: &str) -> Result<Option<Choice<Colour>>, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.colour)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn known_names_are_choices_and_others_are_kept_as_written() {
        assert_eq!(
            read("colour = \"red\""),
            Ok(Some(Choice::Known(Colour::Red)))
        );
        assert_eq!(
            read("colour = \"dark-blue\""),
            Ok(Some(Choice::Known(Colour::Dark)))
        );
        assert_eq!(read(""), Ok(None));
        for unknown in ["Red", "red ", "", "dark_blue"] {
            assert_eq!(
                read(&format!("colour = {unknown:?}")),
                Ok(Some(Choice::Unknown(unknown.to_owned())))
            );
        }
    }

    #[test]
    fn a_choice_of_another_type_fails_as_a_string_would() {
        #[derive(Debug, Deserialize)]
        struct Text {
            #[allow(dead_code)]
            colour: Option<String>,
        }
        for value in ["1", "1.5", "true", "[\"red\"]", "{ a = 1 }"] {
            let text = format!("colour = {value}");
            let as_string = toml::from_str::<Text>(&text)
                .unwrap_err()
                .message()
                .to_owned();
            assert_eq!(read(&text), Err(as_string), "{value}");
        }
    }
}
