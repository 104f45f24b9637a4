//! Conversions between CertHall's [`Timestamp`] and X.509 / OCSP times.
//!
//! RFC 5280 §4.1.2.5: dates through 2049 are `UTCTime`, later ones
//! `GeneralizedTime`; OCSP always uses `GeneralizedTime`. Sub-second parts
//! are dropped (DER forbids fractional seconds in these encodings).

use std::time::Duration;

use certhall_domain::Timestamp;
use der::asn1::{GeneralizedTime, UtcTime};
use der::DateTime;
use x509_cert::time::Time;

use crate::{CaError, Result};

fn datetime(t: Timestamp) -> Result<DateTime> {
    let secs = u64::try_from(t.millis().div_euclid(1000))
        .map_err(|_| CaError::Key("time before 1970".into()))?;
    Ok(DateTime::from_unix_duration(Duration::from_secs(secs))?)
}

/// An X.509 `Time` per RFC 5280's rule.
pub fn x509_time(t: Timestamp) -> Result<Time> {
    let dt = datetime(t)?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(dt)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// A `GeneralizedTime` (OCSP).
pub fn generalized(t: Timestamp) -> Result<GeneralizedTime> {
    Ok(GeneralizedTime::from_date_time(datetime(t)?))
}

/// Back from an X.509 `Time`.
pub fn from_x509(t: &Time) -> Timestamp {
    let d = t.to_unix_duration();
    Timestamp::from_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
