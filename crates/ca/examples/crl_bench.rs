//! CRL at scale (issue 14): the time and memory to build and sign one CRL
//! holding N revoked certificates, per family, with CertHall's CRL engine
//! (`certhall_ca::crl::build`), and the time OpenSSL takes to parse the
//! result (`openssl crl -noout`), as an outside yardstick.
//!
//! Run by `scripts/bench-crl.sh` (release build). Each family runs in its
//! own process (`crl_bench FAMILY N`), so the peak RSS it reports
//! (VmHWM) is that family's alone. Output: one JSON line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

use std::time::{Duration, Instant};

use certhall_ca::crl::{self, Reason, Revoked};
use certhall_ca::issue::{self, random_serial, Issuer, Kind, Request};
use certhall_ca::name::Subject;
use certhall_ca::{CaSigner, Family, SoftwareKey};
use certhall_domain::Timestamp;

const NOW: Timestamp = Timestamp::from_millis(1_795_568_400_000);
const DAY: Duration = Duration::from_secs(86_400);

/// Peak and current resident set size, in KiB, from /proc/self/status.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let family: Family = match args.get(1).map(String::as_str) {
        Some("sm2") => Family::Sm2,
        Some("p256") => Family::P256,
        Some("rsa") => Family::Rsa,
        other => panic!("usage: crl_bench sm2|p256|rsa N [out.der] (got {other:?})"),
    };
    let n: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let out = args.get(3);

    // A root-signed issuing CA, as the engine tests build it.
    let key = SoftwareKey::generate(family.issuing_key()).unwrap();
    let subject = Subject::parse(&format!(
        "C=CN,O=CertHall 测试CA,CN=CertHall {family} Issuing CA"
    ))
    .unwrap();
    let (issuing, _) = issue::issue(
        Issuer {
            certificate: None,
            signer: &key,
        },
        Request {
            serial: &random_serial(),
            subject: subject.to_name().unwrap(),
            public_key: key.public_key_info().unwrap(),
            not_before: NOW,
            not_after: NOW.plus(DAY * 1825),
            kind: Kind::Root,
        },
    )
    .unwrap();

    // N revoked certificates: random 128-bit serials, a spread of times
    // and reasons (some without a reason code, as RFC 5280 asks for
    // `unspecified`).
    let reasons = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::AffiliationChanged,
    ];
    let (rss_before, _) = rss_kib();
    let revoked: Vec<Revoked> = (0..n)
        .map(|i| Revoked {
            serial: random_serial().to_vec(),
            at: NOW.minus(Duration::from_secs((i % 86_400) as u64 * 300)),
            reason: reasons[i % reasons.len()],
        })
        .collect();
    let (rss_input, _) = rss_kib();

    let started = Instant::now();
    let der = crl::build(&issuing, &key, 42, NOW, NOW.plus(DAY), &revoked).unwrap();
    let build = started.elapsed();
    let (rss_peak, _) = rss_kib();

    // Where the time goes: the signature alone over the same bytes.
    let list = <x509_cert::crl::CertificateList as der::Decode>::from_der(&der).unwrap();
    let tbs = der::Encode::to_der(&list.tbs_cert_list).unwrap();
    let started = Instant::now();
    let _ = key.sign(&tbs).unwrap();
    let sign = started.elapsed();

    if let Some(path) = out {
        std::fs::write(path, &der).unwrap();
    }
    println!(
        "{{\"family\":\"{family}\",\"entries\":{n},\"crl_bytes\":{},\"build_s\":{:.3},\"sign_only_s\":{:.3},\"rss_before_mib\":{:.0},\"rss_with_input_mib\":{:.0},\"rss_peak_mib\":{:.0}}}",
        der.len(),
        build.as_secs_f64(),
        sign.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_input as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
    );
}
