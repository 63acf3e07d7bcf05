//! ISO 4217 currency codes that a webhook may carry, with their minor units.
//!
//! The table is the list of active codes as of 2026, sorted so a lookup is a binary search over
//! a static array: no allocation, no hashing, no startup work. Codes that ISO lists without
//! minor units (precious metals, bond units, test and "no currency" codes) are kept in the table
//! so that they are told apart from unknown codes: a payment in them cannot be expressed in
//! cents, and the client deserves a precise answer.

/// The most minor units any active code has (CLF and UYW have 4); `transform` sizes its buffer
/// from this.
pub const MINOR_UNITS_MAX: u8 = 4;

/// An active ISO 4217 code that has minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    minor_units: u8,
}

/// Why a code was not accepted.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Error {
    /// Not three ASCII letters, or not an active ISO 4217 code.
    Unknown,
    /// An active code without minor units, such as XAU or XXX.
    NoMinorUnits,
}

impl Currency {
    /// The upper-case three-letter code, as stored in the `char(3)` column.
    pub fn code(&self) -> &str {
        self.code
    }

    /// Digits after the decimal point: `amount_cents / 10^minor_units` is the amount.
    pub fn minor_units(&self) -> u8 {
        self.minor_units
    }
}

/// Looks up an active ISO 4217 code in any letter case (`usd`, `USD` and `Usd` are the same).
pub fn find(code: &str) -> Result<Currency, Error> {
    let Ok(letters) = <[u8; 3]>::try_from(code.as_bytes()) else {
        return Err(Error::Unknown);
    };
    if !letters.iter().all(u8::is_ascii_alphabetic) {
        return Err(Error::Unknown);
    }
    let upper = letters.map(|letter| letter.to_ascii_uppercase());
    let index = TABLE
        .binary_search_by(|(entry, _)| entry.as_bytes().cmp(upper.as_slice()))
        .map_err(|_| Error::Unknown)?;
    match TABLE.get(index) {
        Some(&(code, Some(minor_units))) => Ok(Currency { code, minor_units }),
        Some(&(_, None)) => Err(Error::NoMinorUnits),
        None => Err(Error::Unknown),
    }
}

/// Active codes and their minor units (`None` where ISO says "N.A."), sorted by code.
///
/// Dropped because ISO withdrew them, so a provider still sending them has a bug we should
/// surface rather than store: HRK (Croatia joined the euro, 2023), SLL (replaced by SLE),
/// VEF (replaced by VES, then VED), ZWL (replaced by ZWG, 2024), MRO (replaced by MRU),
/// STD (replaced by STN), CUC (withdrawn by Cuba), ANG (replaced by XCG in 2025), and
/// BGN (Bulgaria joined the euro on 2026-01-01).
const TABLE: [(&str, Option<u8>); 177] = [
    ("AED", Some(2)),
    ("AFN", Some(2)),
    ("ALL", Some(2)),
    ("AMD", Some(2)),
    ("AOA", Some(2)),
    ("ARS", Some(2)),
    ("AUD", Some(2)),
    ("AWG", Some(2)),
    ("AZN", Some(2)),
    ("BAM", Some(2)),
    ("BBD", Some(2)),
    ("BDT", Some(2)),
    ("BHD", Some(3)),
    ("BIF", Some(0)),
    ("BMD", Some(2)),
    ("BND", Some(2)),
    ("BOB", Some(2)),
    ("BOV", Some(2)),
    ("BRL", Some(2)),
    ("BSD", Some(2)),
    ("BTN", Some(2)),
    ("BWP", Some(2)),
    ("BYN", Some(2)),
    ("BZD", Some(2)),
    ("CAD", Some(2)),
    ("CDF", Some(2)),
    ("CHE", Some(2)),
    ("CHF", Some(2)),
    ("CHW", Some(2)),
    ("CLF", Some(4)),
    ("CLP", Some(0)),
    ("CNY", Some(2)),
    ("COP", Some(2)),
    ("COU", Some(2)),
    ("CRC", Some(2)),
    ("CUP", Some(2)),
    ("CVE", Some(2)),
    ("CZK", Some(2)),
    ("DJF", Some(0)),
    ("DKK", Some(2)),
    ("DOP", Some(2)),
    ("DZD", Some(2)),
    ("EGP", Some(2)),
    ("ERN", Some(2)),
    ("ETB", Some(2)),
    ("EUR", Some(2)),
    ("FJD", Some(2)),
    ("FKP", Some(2)),
    ("GBP", Some(2)),
    ("GEL", Some(2)),
    ("GHS", Some(2)),
    ("GIP", Some(2)),
    ("GMD", Some(2)),
    ("GNF", Some(0)),
    ("GTQ", Some(2)),
    ("GYD", Some(2)),
    ("HKD", Some(2)),
    ("HNL", Some(2)),
    ("HTG", Some(2)),
    ("HUF", Some(2)),
    ("IDR", Some(2)),
    ("ILS", Some(2)),
    ("INR", Some(2)),
    ("IQD", Some(3)),
    ("IRR", Some(2)),
    ("ISK", Some(0)),
    ("JMD", Some(2)),
    ("JOD", Some(3)),
    ("JPY", Some(0)),
    ("KES", Some(2)),
    ("KGS", Some(2)),
    ("KHR", Some(2)),
    ("KMF", Some(0)),
    ("KPW", Some(2)),
    ("KRW", Some(0)),
    ("KWD", Some(3)),
    ("KYD", Some(2)),
    ("KZT", Some(2)),
    ("LAK", Some(2)),
    ("LBP", Some(2)),
    ("LKR", Some(2)),
    ("LRD", Some(2)),
    ("LSL", Some(2)),
    ("LYD", Some(3)),
    ("MAD", Some(2)),
    ("MDL", Some(2)),
    ("MGA", Some(2)),
    ("MKD", Some(2)),
    ("MMK", Some(2)),
    ("MNT", Some(2)),
    ("MOP", Some(2)),
    ("MRU", Some(2)),
    ("MUR", Some(2)),
    ("MVR", Some(2)),
    ("MWK", Some(2)),
    ("MXN", Some(2)),
    ("MXV", Some(2)),
    ("MYR", Some(2)),
    ("MZN", Some(2)),
    ("NAD", Some(2)),
    ("NGN", Some(2)),
    ("NIO", Some(2)),
    ("NOK", Some(2)),
    ("NPR", Some(2)),
    ("NZD", Some(2)),
    ("OMR", Some(3)),
    ("PAB", Some(2)),
    ("PEN", Some(2)),
    ("PGK", Some(2)),
    ("PHP", Some(2)),
    ("PKR", Some(2)),
    ("PLN", Some(2)),
    ("PYG", Some(0)),
    ("QAR", Some(2)),
    ("RON", Some(2)),
    ("RSD", Some(2)),
    ("RUB", Some(2)),
    ("RWF", Some(0)),
    ("SAR", Some(2)),
    ("SBD", Some(2)),
    ("SCR", Some(2)),
    ("SDG", Some(2)),
    ("SEK", Some(2)),
    ("SGD", Some(2)),
    ("SHP", Some(2)),
    ("SLE", Some(2)),
    ("SOS", Some(2)),
    ("SRD", Some(2)),
    ("SSP", Some(2)),
    ("STN", Some(2)),
    ("SVC", Some(2)),
    ("SYP", Some(2)),
    ("SZL", Some(2)),
    ("THB", Some(2)),
    ("TJS", Some(2)),
    ("TMT", Some(2)),
    ("TND", Some(3)),
    ("TOP", Some(2)),
    ("TRY", Some(2)),
    ("TTD", Some(2)),
    ("TWD", Some(2)),
    ("TZS", Some(2)),
    ("UAH", Some(2)),
    ("UGX", Some(0)),
    ("USD", Some(2)),
    ("USN", Some(2)),
    ("UYI", Some(0)),
    ("UYU", Some(2)),
    ("UYW", Some(4)),
    ("UZS", Some(2)),
    ("VED", Some(2)),
    ("VES", Some(2)),
    ("VND", Some(0)),
    ("VUV", Some(0)),
    ("WST", Some(2)),
    ("XAF", Some(0)),
    ("XAG", None),
    ("XAU", None),
    ("XBA", None),
    ("XBB", None),
    ("XBC", None),
    ("XBD", None),
    ("XCD", Some(2)),
    ("XCG", Some(2)),
    ("XDR", None),
    ("XOF", Some(0)),
    ("XPD", None),
    ("XPF", Some(0)),
    ("XPT", None),
    ("XSU", None),
    ("XTS", None),
    ("XUA", None),
    ("XXX", None),
    ("YER", Some(2)),
    ("ZAR", Some(2)),
    ("ZMW", Some(2)),
    ("ZWG", Some(2)),
];

// The binary search is only correct on a strictly sorted table of three upper-case letters,
// and `transform` relies on the minor-units bound; a bad edit fails the build.
const _: () = assert!(table_is_well_formed());

const fn table_is_well_formed() -> bool {
    let mut rest = TABLE.as_slice();
    let mut previous: Option<[u8; 3]> = None;
    while let [(code, minor_units), tail @ ..] = rest {
        let &[a, b, c] = code.as_bytes() else {
            return false;
        };
        if !(a.is_ascii_uppercase() && b.is_ascii_uppercase() && c.is_ascii_uppercase()) {
            return false;
        }
        if let Some(minor_units) = *minor_units
            && minor_units > MINOR_UNITS_MAX
        {
            return false;
        }
        if let Some([x, y, z]) = previous {
            let ascending = x < a || (x == a && (y < b || (y == b && z < c)));
            if !ascending {
                return false;
            }
        }
        previous = Some([a, b, c]);
        rest = tail;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(code: &str, expected: Result<(&str, u8), Error>) {
        let actual = find(code);
        let actual = actual
            .as_ref()
            .map(|found| (found.code(), found.minor_units()));
        assert_eq!(actual, expected.as_ref().map(|pair| *pair), "code {code:?}");
    }

    #[test]
    fn find_codes() {
        check("USD", Ok(("USD", 2)));
        check("usd", Ok(("USD", 2)));
        check("Usd", Ok(("USD", 2)));
        check("uSd", Ok(("USD", 2)));
        check("EUR", Ok(("EUR", 2)));
        check("JPY", Ok(("JPY", 0)));
        check("KRW", Ok(("KRW", 0)));
        check("BHD", Ok(("BHD", 3)));
        check("KWD", Ok(("KWD", 3)));
        check("CLF", Ok(("CLF", 4)));
        check("UYW", Ok(("UYW", 4)));
        check("UYI", Ok(("UYI", 0)));
        check("XOF", Ok(("XOF", 0)));
        check("XCG", Ok(("XCG", 2)));
        check("ZWG", Ok(("ZWG", 2)));
        check("SLE", Ok(("SLE", 2)));
        check("VED", Ok(("VED", 2)));
        check("VES", Ok(("VES", 2)));
        check("MRU", Ok(("MRU", 2)));
        check("STN", Ok(("STN", 2)));
        // First and last entries, so an off-by-one in the search would show.
        check("AED", Ok(("AED", 2)));
        check("ZWG", Ok(("ZWG", 2)));
        check("AAA", Err(Error::Unknown));
        check("ZZZ", Err(Error::Unknown));
        // No minor units.
        check("XAU", Err(Error::NoMinorUnits));
        check("xau", Err(Error::NoMinorUnits));
        check("XXX", Err(Error::NoMinorUnits));
        check("XAG", Err(Error::NoMinorUnits));
        check("XDR", Err(Error::NoMinorUnits));
        check("XTS", Err(Error::NoMinorUnits));
        check("XUA", Err(Error::NoMinorUnits));
        // Withdrawn.
        check("HRK", Err(Error::Unknown));
        check("SLL", Err(Error::Unknown));
        check("VEF", Err(Error::Unknown));
        check("ZWL", Err(Error::Unknown));
        check("MRO", Err(Error::Unknown));
        check("STD", Err(Error::Unknown));
        check("CUC", Err(Error::Unknown));
        check("ANG", Err(Error::Unknown));
        check("BGN", Err(Error::Unknown));
        // Not three ASCII letters: just under, just over, and look-alikes.
        check("", Err(Error::Unknown));
        check("US", Err(Error::Unknown));
        check("USDD", Err(Error::Unknown));
        check(" USD", Err(Error::Unknown));
        check("US1", Err(Error::Unknown));
        check("U$D", Err(Error::Unknown));
        check("ÜSD", Err(Error::Unknown));
        check("ＵＳＤ", Err(Error::Unknown));
    }

    #[test]
    fn every_entry_is_found() {
        for (code, minor_units) in TABLE {
            let expected = minor_units
                .map(|minor| (code, minor))
                .ok_or(Error::NoMinorUnits);
            check(code, expected);
            check(&code.to_ascii_lowercase(), expected);
        }
    }

    #[test]
    fn no_minor_units_set_is_exactly_the_contracts() {
        let without: Vec<&str> = TABLE
            .iter()
            .filter(|(_, minor_units)| minor_units.is_none())
            .map(|(code, _)| *code)
            .collect();
        let expected = [
            "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA",
            "XXX",
        ];
        assert_eq!(without, expected);
    }
}
