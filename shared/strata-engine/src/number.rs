//! DynamoDB's number type: an exact decimal with up to 38 significant digits
//! and a magnitude between 1E-130 and 9.99…E+125. Arithmetic and comparison
//! are exact; a result that does not fit is an error, never rounded.

use std::cmp::Ordering;
use std::fmt;

/// Most significant digits a number may have.
pub const MAX_DIGITS: usize = 38;
/// Bounds on `exp` in the normalized form 0.d1d2… × 10^exp.
const MIN_EXP: i32 = -129; // 1E-130 = 0.1 × 10^-129
const MAX_EXP: i32 = 126; // 9.99…E+125 = 0.999… × 10^126

/// An exact decimal: `±0.d1d2…dn × 10^exp`, with no leading or trailing zero
/// digits (zero has no digits). This form is canonical, so derived equality
/// and hashing are numeric equality.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Number {
    negative: bool,
    digits: Vec<u8>,
    exp: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("The parameter cannot be converted to a numeric value: {0}")]
    NotANumber(String),
    #[error(
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    )]
    Overflow,
    #[error("Number underflow. Attempting to store a number with magnitude smaller than supported range")]
    Underflow,
    #[error("Attempting to store more than 38 significant digits in a Number")]
    TooPrecise,
}

impl Number {
    pub fn zero() -> Self {
        Number {
            negative: false,
            digits: Vec::new(),
            exp: 0,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Digits after the decimal point (0 for an integer).
    pub fn scale(&self) -> u32 {
        (self.digits.len() as i64 - i64::from(self.exp)).max(0) as u32
    }

    /// Digits before the decimal point (0 for a magnitude below 1).
    pub fn integer_digits(&self) -> u32 {
        if self.is_zero() {
            0
        } else {
            self.exp.max(0) as u32
        }
    }

    /// The value times 10^`scale` as an integer, when that is exact and
    /// has at most 38 digits (what a decimal128(38, scale) holds).
    pub fn to_scaled_i128(&self, scale: u32) -> Option<i128> {
        if self.scale() > scale || self.integer_digits() + scale > 38 {
            return None;
        }
        let mut v: i128 = 0;
        for d in &self.digits {
            v = v * 10 + i128::from(*d);
        }
        let shift = i64::from(self.exp) - self.digits.len() as i64 + i64::from(scale);
        for _ in 0..shift {
            v = v.checked_mul(10)?;
        }
        Some(if self.negative { -v } else { v })
    }

    /// Significant digits (1 for zero, as DynamoDB sizes it).
    pub fn significant_digits(&self) -> usize {
        self.digits.len().max(1)
    }

    /// Parses DynamoDB's number syntax: optional sign, digits with an optional
    /// point, optional exponent (`1`, `-1.50`, `.5`, `1e-3`, `1E+10`).
    pub fn parse(text: &str) -> Result<Number, NumberError> {
        let bad = || NumberError::NotANumber(text.to_string());
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let exp10: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let zero = int_part.bytes().chain(frac_part.bytes()).all(|b| b == b'0');
                if zero {
                    return Ok(Number::zero());
                }
                // Exponents this long are out of range for any non-zero mantissa.
                if digits.trim_start_matches('0').len() > 6 {
                    return Err(if e.starts_with('-') {
                        NumberError::Underflow
                    } else {
                        NumberError::Overflow
                    });
                }
                e.parse::<i64>().map_err(|_| bad())?
            }
        };
        let all: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        // value = 0.all × 10^(len(int_part) + exp10)
        let exp = int_part.len() as i64 + exp10;
        Number::from_parts(negative, &all, exp)
    }

    /// Builds `±0.digits × 10^exp`, normalizing and checking range.
    fn from_parts(negative: bool, digits: &[u8], exp: i64) -> Result<Number, NumberError> {
        let lead = digits.iter().take_while(|d| **d == 0).count();
        let digits = &digits[lead..];
        let exp = exp - lead as i64;
        let trail = digits.iter().rev().take_while(|d| **d == 0).count();
        let digits = &digits[..digits.len() - trail];
        if digits.is_empty() {
            return Ok(Number::zero());
        }
        if digits.len() > MAX_DIGITS {
            return Err(NumberError::TooPrecise);
        }
        if exp > MAX_EXP as i64 {
            return Err(NumberError::Overflow);
        }
        if exp < MIN_EXP as i64 {
            return Err(NumberError::Underflow);
        }
        Ok(Number {
            negative,
            digits: digits.to_vec(),
            exp: exp as i32,
        })
    }

    pub fn from_i64(v: i64) -> Number {
        // Every i64 has at most 19 digits: always in range.
        Number::parse(&v.to_string()).unwrap_or_else(|_| Number::zero())
    }

    pub fn neg(&self) -> Number {
        Number {
            negative: !self.negative && !self.is_zero(),
            ..self.clone()
        }
    }

    /// Exact sum; an error when the result has more than 38 significant
    /// digits or leaves the range.
    pub fn add(&self, other: &Number) -> Result<Number, NumberError> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        // Write both as integers scaled by 10^low: value = I × 10^low.
        let low_a = self.exp - self.digits.len() as i32;
        let low_b = other.exp - other.digits.len() as i32;
        let low = low_a.min(low_b);
        let a = scaled_le(&self.digits, (low_a - low) as usize);
        let b = scaled_le(&other.digits, (low_b - low) as usize);
        let (negative, mag) = if self.negative == other.negative {
            (self.negative, add_le(&a, &b))
        } else {
            match cmp_le(&a, &b) {
                Ordering::Equal => return Ok(Number::zero()),
                Ordering::Greater => (self.negative, sub_le(&a, &b)),
                Ordering::Less => (other.negative, sub_le(&b, &a)),
            }
        };
        let mut digits: Vec<u8> = mag.into_iter().rev().collect();
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        let exp = low as i64 + digits.len() as i64;
        Number::from_parts(negative, &digits, exp)
    }

    pub fn sub(&self, other: &Number) -> Result<Number, NumberError> {
        self.add(&other.neg())
    }

    /// Digits and exponent of the normalized form, for order-preserving encodings.
    pub(crate) fn parts(&self) -> (bool, &[u8], i32) {
        (self.negative, &self.digits, self.exp)
    }
}

/// Little-endian digits of `digits` (most significant first) followed by `zeros` zeros.
fn scaled_le(digits: &[u8], zeros: usize) -> Vec<u8> {
    let mut v = vec![0u8; zeros];
    v.extend(digits.iter().rev());
    v
}

fn cmp_le(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (trim_le(a), trim_le(b));
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn trim_le(v: &[u8]) -> &[u8] {
    let n = v.len() - v.iter().rev().take_while(|d| **d == 0).count();
    &v[..n]
}

fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0u8;
    for i in 0..a.len().max(b.len()) {
        let s = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
        out.push(s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out
}

/// a - b for a >= b.
fn sub_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i8;
    for (i, &da) in a.iter().enumerate() {
        let mut d = da as i8 - b.get(i).copied().unwrap_or(0) as i8 - borrow;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out.push(d as u8);
    }
    out
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        let sign = |n: &Number| match (n.is_zero(), n.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        let (sa, sb) = (sign(self), sign(other));
        if sa != sb || sa == 0 {
            return sa.cmp(&sb);
        }
        let magnitude = self
            .exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits));
        if sa < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Number {
    /// Plain decimal notation, as DynamoDB returns numbers: no exponent, no
    /// trailing zeros after the point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut s = String::with_capacity(self.digits.len() + 8);
        if self.negative {
            s.push('-');
        }
        let d: String = self.digits.iter().map(|d| (b'0' + d) as char).collect();
        let n = d.len() as i32;
        if self.exp <= 0 {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-self.exp) as usize));
            s.push_str(&d);
        } else if self.exp >= n {
            s.push_str(&d);
            s.extend(std::iter::repeat_n('0', (self.exp - n) as usize));
        } else {
            s.push_str(&d[..self.exp as usize]);
            s.push('.');
            s.push_str(&d[self.exp as usize..]);
        }
        f.write_str(&s)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "N({self})")
    }
}

impl std::str::FromStr for Number {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Number, NumberError> {
        Number::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_integers_for_decimal_columns() {
        let n = |t: &str| Number::parse(t).unwrap();
        assert_eq!(n("12.5").scale(), 1);
        assert_eq!(n("1200").scale(), 0);
        assert_eq!(n("0.001").integer_digits(), 0);
        assert_eq!(n("12.5").to_scaled_i128(2), Some(1250));
        assert_eq!(n("-7").to_scaled_i128(3), Some(-7000));
        assert_eq!(n("0").to_scaled_i128(4), Some(0));
        assert_eq!(n("1.25").to_scaled_i128(1), None);
        assert_eq!(n("1E+37").to_scaled_i128(2), None);
        assert_eq!(
            n("9".repeat(38).as_str()).to_scaled_i128(0),
            Some(10i128.pow(38) - 1)
        );
    }

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_canonically() {
        for (input, out) in [
            ("0", "0"),
            ("-0", "0"),
            ("007", "7"),
            ("1.50", "1.5"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("-12.5e-3", "-0.0125"),
            ("123.456", "123.456"),
            ("1E-130", &format!("0.{}1", "0".repeat(129))),
            ("+42", "42"),
        ] {
            assert_eq!(n(input).to_string(), out, "{input}");
        }
    }

    #[test]
    fn rejects_what_does_not_fit() {
        assert_eq!(Number::parse("1E126"), Err(NumberError::Overflow));
        assert_eq!(Number::parse("1E-131"), Err(NumberError::Underflow));
        assert!(Number::parse("9.9999999999999999999999999999999999999E+125").is_ok());
        assert_eq!(
            Number::parse("1.234567890123456789012345678901234567891"),
            Err(NumberError::TooPrecise)
        );
        for bad in [
            "",
            "-",
            "abc",
            "1.2.3",
            "1e",
            "e5",
            "NaN",
            "Infinity",
            "1e+-2",
            "0x10",
            "1e99999999999",
        ] {
            assert!(Number::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn adds_exactly() {
        assert_eq!(n("0.1").add(&n("0.2")).unwrap(), n("0.3"));
        assert_eq!(n("1").sub(&n("1")).unwrap(), Number::zero());
        assert_eq!(n("-5").add(&n("3")).unwrap(), n("-2"));
        assert_eq!(n("999").add(&n("1")).unwrap(), n("1000"));
        assert_eq!(n("1e100").sub(&n("1e100")).unwrap(), Number::zero());
        let big = n("99999999999999999999999999999999999999");
        assert_eq!(big.add(&n("1")).unwrap(), n("1e38"));
        assert_eq!(n("1e37").add(&n("1e-1")), Err(NumberError::TooPrecise));
        assert_eq!(
            n("9.9999999999999999999999999999999999999E+125").add(&n("1e88")),
            Err(NumberError::Overflow)
        );
    }

    #[test]
    fn orders_numerically() {
        let mut v: Vec<Number> = ["10", "-1", "0", "2", "-10", "0.5", "-0.5", "1e-5"]
            .iter()
            .map(|s| n(s))
            .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(s, ["-10", "-1", "-0.5", "0", "0.00001", "0.5", "2", "10"]);
        assert_eq!(n("1.0"), n("1"));
    }
}
