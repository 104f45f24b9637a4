//! The CA engine's records: CA certificates and where their keys live,
//! profiles, issued certificates, revocations, CRLs and pre-signed OCSP
//! responses. This module stores bytes and text; `certhall-ca` gives them
//! meaning.

use certhall_domain::{AccountId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, WriteTx};

/// A CA certificate (root, issuing CA or OCSP signer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityRow {
    /// Row id.
    pub id: i64,
    /// `sm2`, `p256` or `rsa`.
    pub family: String,
    /// `root`, `issuing` or `ocsp`.
    pub role: String,
    /// Serial, lower-case hex.
    pub serial: String,
    /// Subject text.
    pub subject: String,
    /// The certificate.
    pub der: Vec<u8>,
    /// SHA-256 fingerprint.
    pub sha256: String,
    /// Where the key lives (JSON).
    pub key_ref: String,
    /// The issuing authority's row (none for roots).
    pub issuer_id: Option<i64>,
    /// Validity start.
    pub not_before: Timestamp,
    /// Validity end.
    pub not_after: Timestamp,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was replaced (OCSP signers are rotated).
    pub retired_at: Option<Timestamp>,
}

fn authority_from_row(r: &AnyRow) -> Result<AuthorityRow> {
    let retired: Option<i64> = r.try_get("retired_at")?;
    Ok(AuthorityRow {
        id: r.try_get("id")?,
        family: r.try_get("family")?,
        role: r.try_get("role")?,
        serial: r.try_get("serial")?,
        subject: r.try_get("subject")?,
        der: r.try_get("der")?,
        sha256: r.try_get("sha256")?,
        key_ref: r.try_get("key_ref")?,
        issuer_id: r.try_get("issuer_id")?,
        not_before: Timestamp::from_millis(r.try_get("not_before")?),
        not_after: Timestamp::from_millis(r.try_get("not_after")?),
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        retired_at: retired.map(Timestamp::from_millis),
    })
}

const AUTHORITY_COLUMNS: &str =
    "id, family, role, serial, subject, der, sha256, key_ref, issuer_id, \
                                 not_before, not_after, created_at, retired_at";

/// Stores a CA certificate; returns its id.
pub async fn insert_authority(tx: &mut WriteTx, a: &AuthorityRow) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO ca_authorities (family, role, serial, subject, der, sha256, key_ref, issuer_id, \
                                     not_before, not_after, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(a.family.as_str())
    .bind(a.role.as_str())
    .bind(a.serial.as_str())
    .bind(a.subject.as_str())
    .bind(a.der.clone())
    .bind(a.sha256.as_str())
    .bind(a.key_ref.as_str())
    .bind(a.issuer_id)
    .bind(a.not_before.millis())
    .bind(a.not_after.millis())
    .bind(a.created_at.millis())
    .fetch_one(tx.conn())
    .await?;
    // The OCSP responders of every process must learn of the new CA.
    bump_ocsp_generation(tx).await?;
    Ok(id)
}

/// Marks a CA certificate replaced.
pub async fn retire_authority(tx: &mut WriteTx, id: i64, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE ca_authorities SET retired_at = $2 WHERE id = $1 AND retired_at IS NULL")
        .bind(id)
        .bind(now.millis())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Every CA certificate, oldest first.
pub async fn authorities(store: &Store) -> Result<Vec<AuthorityRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {AUTHORITY_COLUMNS} FROM ca_authorities ORDER BY id"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(authority_from_row).collect()
}

/// The current (not retired, newest) authority of a family and role.
pub async fn active_authority(
    store: &Store,
    family: &str,
    role: &str,
) -> Result<Option<AuthorityRow>> {
    let row = sqlx::query(&format!(
        "SELECT {AUTHORITY_COLUMNS} FROM ca_authorities \
         WHERE family = $1 AND role = $2 AND retired_at IS NULL ORDER BY id DESC LIMIT 1"
    ))
    .bind(family)
    .bind(role)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(authority_from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn active_authority_tx(
    tx: &mut WriteTx,
    family: &str,
    role: &str,
) -> Result<Option<AuthorityRow>> {
    let row = sqlx::query(&format!(
        "SELECT {AUTHORITY_COLUMNS} FROM ca_authorities \
         WHERE family = $1 AND role = $2 AND retired_at IS NULL ORDER BY id DESC LIMIT 1"
    ))
    .bind(family)
    .bind(role)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(authority_from_row).transpose()
}

/// One authority by id.
pub async fn authority(store: &Store, id: i64) -> Result<Option<AuthorityRow>> {
    let row = sqlx::query(&format!(
        "SELECT {AUTHORITY_COLUMNS} FROM ca_authorities WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(authority_from_row).transpose()
}

/// A stored profile (JSON body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    /// Name.
    pub name: String,
    /// JSON.
    pub body: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

fn profile_from_row(r: &AnyRow) -> Result<ProfileRow> {
    Ok(ProfileRow {
        name: r.try_get("name")?,
        body: r.try_get("body")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

/// Adds a profile; false when the name exists.
pub async fn insert_profile(
    tx: &mut WriteTx,
    name: &str,
    body: &str,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO ca_profiles (name, body, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(body)
    .bind(now.millis())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a profile's body; false when there is no such profile.
pub async fn update_profile(
    tx: &mut WriteTx,
    name: &str,
    body: &str,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query("UPDATE ca_profiles SET body = $2, updated_at = $3 WHERE name = $1")
        .bind(name)
        .bind(body)
        .bind(now.millis())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One profile.
pub async fn profile(store: &Store, name: &str) -> Result<Option<ProfileRow>> {
    let row =
        sqlx::query("SELECT name, body, created_at, updated_at FROM ca_profiles WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await?;
    row.as_ref().map(profile_from_row).transpose()
}

/// All profiles by name.
pub async fn profiles(store: &Store) -> Result<Vec<ProfileRow>> {
    let rows =
        sqlx::query("SELECT name, body, created_at, updated_at FROM ca_profiles ORDER BY name")
            .fetch_all(store.pool())
            .await?;
    rows.iter().map(profile_from_row).collect()
}

/// A subscriber certificate, with its revocation if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Issuing authority.
    pub issuer_id: i64,
    /// Profile name.
    pub profile: String,
    /// Subject text.
    pub subject: String,
    /// Key algorithm, e.g. `SM2`.
    pub key_algorithm: String,
    /// Validity start.
    pub not_before: Timestamp,
    /// Validity end.
    pub not_after: Timestamp,
    /// The certificate.
    pub der: Vec<u8>,
    /// SHA-256 fingerprint.
    pub sha256: String,
    /// Owning account.
    pub account_id: Option<AccountId>,
    /// Owning order.
    pub order_id: Option<i64>,
    /// The certificate this one renews.
    pub predecessor_serial: Option<String>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// Its revocation.
    pub revocation: Option<RevocationRow>,
}

/// A revocation record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    /// RFC 5280 reason name.
    pub reason: String,
    /// RFC 5280 reason code.
    pub reason_code: i64,
    /// Effective time.
    pub revoked_at: Timestamp,
    /// Who revoked it.
    pub actor: String,
    /// Free text.
    pub comment: Option<String>,
}

const CERT_SELECT: &str =
    "SELECT c.serial, c.issuer_id, c.profile, c.subject, c.key_algorithm, c.not_before, \
     c.not_after, c.der, c.sha256, c.account_id, c.order_id, c.predecessor_serial, c.issued_at, \
     r.reason, r.reason_code, r.revoked_at, r.actor, r.comment \
     FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial";

fn certificate_from_row(r: &AnyRow) -> Result<CertificateRow> {
    let reason: Option<String> = r.try_get("reason")?;
    let revocation = match reason {
        Some(reason) => Some(RevocationRow {
            reason,
            reason_code: r.try_get("reason_code")?,
            revoked_at: Timestamp::from_millis(r.try_get("revoked_at")?),
            actor: r.try_get("actor")?,
            comment: r.try_get("comment")?,
        }),
        None => None,
    };
    let account: Option<i64> = r.try_get("account_id")?;
    Ok(CertificateRow {
        serial: r.try_get("serial")?,
        issuer_id: r.try_get("issuer_id")?,
        profile: r.try_get("profile")?,
        subject: r.try_get("subject")?,
        key_algorithm: r.try_get("key_algorithm")?,
        not_before: Timestamp::from_millis(r.try_get("not_before")?),
        not_after: Timestamp::from_millis(r.try_get("not_after")?),
        der: r.try_get("der")?,
        sha256: r.try_get("sha256")?,
        account_id: account.map(AccountId),
        order_id: r.try_get("order_id")?,
        predecessor_serial: r.try_get("predecessor_serial")?,
        issued_at: Timestamp::from_millis(r.try_get("issued_at")?),
        revocation,
    })
}

/// Stores an issued certificate (in the transaction that makes it visible).
pub async fn insert_certificate(tx: &mut WriteTx, c: &CertificateRow) -> Result<()> {
    insert_certificates(tx, &[c]).await
}

/// Inserts many certificates with multi-row INSERTs (group commit of
/// issuances: one statement per up to 128 rows instead of one per row).
pub async fn insert_certificates(tx: &mut WriteTx, rows: &[&CertificateRow]) -> Result<()> {
    for chunk in crate::insert_chunks(rows) {
        let sql = format!(
            "INSERT INTO certificates (serial, issuer_id, profile, subject, key_algorithm, not_before, not_after, \
                                       der, sha256, account_id, order_id, predecessor_serial, issued_at) VALUES {}",
            crate::values_list(tx.backend(), chunk.len(), 13)
        );
        let mut q = sqlx::query(&sql);
        for c in chunk {
            q = q
                .bind(c.serial.as_str())
                .bind(c.issuer_id)
                .bind(c.profile.as_str())
                .bind(c.subject.as_str())
                .bind(c.key_algorithm.as_str())
                .bind(c.not_before.millis())
                .bind(c.not_after.millis())
                .bind(c.der.clone())
                .bind(c.sha256.as_str())
                .bind(c.account_id.map(|a| a.0))
                .bind(c.order_id)
                .bind(c.predecessor_serial.clone())
                .bind(c.issued_at.millis());
        }
        q.execute(tx.conn()).await?;
    }
    Ok(())
}

/// The active issuing-role CA of `family` and the stored body of profile
/// `profile`, in one round trip inside a write transaction (to check that
/// a batch of issuances was built from them as they still are).
pub async fn issuing_basis_tx(
    tx: &mut WriteTx,
    family: &str,
    role: &str,
    profile: &str,
) -> Result<(Option<i64>, Option<String>)> {
    let row = sqlx::query(
        "SELECT (SELECT id FROM ca_authorities WHERE family = $1 AND role = $2 AND retired_at IS NULL \
                 ORDER BY id DESC LIMIT 1) AS authority, \
                (SELECT body FROM ca_profiles WHERE name = $3) AS body",
    )
    .bind(family)
    .bind(role)
    .bind(profile)
    .fetch_one(tx.conn())
    .await?;
    Ok((row.try_get("authority")?, row.try_get("body")?))
}

/// One certificate by serial.
pub async fn certificate(store: &Store, serial: &str) -> Result<Option<CertificateRow>> {
    let row = sqlx::query(&format!("{CERT_SELECT} WHERE c.serial = $1"))
        .bind(serial)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(certificate_from_row).transpose()
}

/// The same, inside a write transaction.
pub async fn certificate_tx(tx: &mut WriteTx, serial: &str) -> Result<Option<CertificateRow>> {
    let row = sqlx::query(&format!("{CERT_SELECT} WHERE c.serial = $1"))
        .bind(serial)
        .fetch_optional(tx.conn())
        .await?;
    row.as_ref().map(certificate_from_row).transpose()
}

/// The latest `limit` certificates, newest first, optionally of one issuer.
pub async fn certificates(
    store: &Store,
    issuer_id: Option<i64>,
    limit: u32,
) -> Result<Vec<CertificateRow>> {
    let rows = sqlx::query(&format!(
        "{CERT_SELECT} WHERE ($1 IS NULL OR c.issuer_id = $1) ORDER BY c.issued_at DESC, c.serial LIMIT $2"
    ))
    .bind(issuer_id)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(certificate_from_row).collect()
}

/// An account's certificates, newest first.
pub async fn certificates_of_account(
    store: &Store,
    account: certhall_domain::AccountId,
) -> Result<Vec<CertificateRow>> {
    let rows = sqlx::query(&format!(
        "{CERT_SELECT} WHERE c.account_id = $1 ORDER BY c.issued_at DESC, c.serial"
    ))
    .bind(account.0)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(certificate_from_row).collect()
}

/// Certificates that reached their owner (issued without an order, or
/// written onto the order's key), not revoked, ending in `(from, to]`:
/// the ones an expiry reminder may be due for. Oldest end first.
pub async fn unrevoked_ending_between(
    store: &Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<CertificateRow>> {
    let rows = sqlx::query(&format!(
        "{CERT_SELECT} WHERE r.serial IS NULL AND c.account_id IS NOT NULL \
         AND c.not_after > $1 AND c.not_after <= $2 \
         AND (c.order_id IS NULL OR EXISTS (SELECT 1 FROM ukeys k WHERE k.certificate_serial = c.serial)) \
         ORDER BY c.not_after, c.serial"
    ))
    .bind(from.millis())
    .bind(to.millis())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(certificate_from_row).collect()
}

/// Certificates found by the counter's search: the one with `serial`, or
/// those whose subject holds `text` (an enterprise's USCC or name), newest
/// first, at most `limit`.
pub async fn search_certificates(
    store: &Store,
    serial: &str,
    text: &str,
    limit: u32,
) -> Result<Vec<CertificateRow>> {
    let pattern = format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = sqlx::query(&format!(
        "{CERT_SELECT} WHERE c.serial = $1 OR c.subject LIKE $2 ESCAPE '\\' \
         ORDER BY c.issued_at DESC, c.serial LIMIT $3"
    ))
    .bind(serial)
    .bind(pattern)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(certificate_from_row).collect()
}

/// Certificates not revoked and not expired at `now` whose subject holds
/// `USCC=uscc` (bulk revocation of an enterprise's certificates).
pub async fn live_of_enterprise(
    tx: &mut WriteTx,
    uscc: &str,
    now: Timestamp,
) -> Result<Vec<CertificateRow>> {
    let rows = sqlx::query(&format!(
        "{CERT_SELECT} WHERE r.serial IS NULL AND c.not_after > $1 \
         AND (c.subject LIKE $2 OR c.subject LIKE $3) ORDER BY c.serial"
    ))
    .bind(now.millis())
    .bind(format!("%USCC={uscc},%"))
    .bind(format!("%USCC={uscc}"))
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(certificate_from_row).collect()
}

/// Records a revocation; false when the certificate was already revoked.
pub async fn insert_revocation(tx: &mut WriteTx, serial: &str, r: &RevocationRow) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO revocations (serial, reason, reason_code, revoked_at, actor, comment) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial) DO NOTHING",
    )
    .bind(serial)
    .bind(r.reason.as_str())
    .bind(r.reason_code)
    .bind(r.revoked_at.millis())
    .bind(r.actor.as_str())
    .bind(r.comment.clone())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revoked serials of one issuer, with time and reason code, for its CRL.
pub async fn revoked_by_issuer(
    tx: &mut WriteTx,
    issuer_id: i64,
) -> Result<Vec<(String, Timestamp, i64)>> {
    let rows = sqlx::query(
        "SELECT r.serial, r.revoked_at, r.reason_code FROM revocations r \
         JOIN certificates c ON c.serial = r.serial WHERE c.issuer_id = $1 ORDER BY r.revoked_at, r.serial",
    )
    .bind(issuer_id)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("serial")?,
                Timestamp::from_millis(r.try_get("revoked_at")?),
                r.try_get("reason_code")?,
            ))
        })
        .collect()
}

/// A stored CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRow {
    /// Issuing authority.
    pub issuer_id: i64,
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: Timestamp,
    /// nextUpdate.
    pub next_update: Timestamp,
    /// DER.
    pub der: Vec<u8>,
}

/// The newest CRL of an issuer.
pub async fn latest_crl(store: &Store, issuer_id: i64) -> Result<Option<CrlRow>> {
    let row = sqlx::query(
        "SELECT issuer_id, number, this_update, next_update, der FROM crls \
         WHERE issuer_id = $1 ORDER BY number DESC LIMIT 1",
    )
    .bind(issuer_id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(CrlRow {
            issuer_id: r.try_get("issuer_id")?,
            number: r.try_get("number")?,
            this_update: Timestamp::from_millis(r.try_get("this_update")?),
            next_update: Timestamp::from_millis(r.try_get("next_update")?),
            der: r.try_get("der")?,
        })
    })
    .transpose()
}

/// The next CRL number of an issuer (1 for the first).
pub async fn next_crl_number(tx: &mut WriteTx, issuer_id: i64) -> Result<i64> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM crls WHERE issuer_id = $1")
        .bind(issuer_id)
        .fetch_one(tx.conn())
        .await?;
    Ok(max.unwrap_or(0) + 1)
}

/// Stores a CRL.
pub async fn insert_crl(tx: &mut WriteTx, c: &CrlRow) -> Result<()> {
    sqlx::query("INSERT INTO crls (issuer_id, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)")
        .bind(c.issuer_id)
        .bind(c.number)
        .bind(c.this_update.millis())
        .bind(c.next_update.millis())
        .bind(c.der.clone())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A pre-signed OCSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRow {
    /// thisUpdate.
    pub this_update: Timestamp,
    /// nextUpdate.
    pub next_update: Timestamp,
    /// DER.
    pub der: Vec<u8>,
}

/// The cached response for a serial of an issuer.
pub async fn cached_ocsp(store: &Store, issuer_id: i64, serial: &str) -> Result<Option<OcspRow>> {
    let row = sqlx::query(
        "SELECT this_update, next_update, der FROM ocsp_responses WHERE issuer_id = $1 AND serial = $2",
    )
    .bind(issuer_id)
    .bind(serial)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(OcspRow {
            this_update: Timestamp::from_millis(r.try_get("this_update")?),
            next_update: Timestamp::from_millis(r.try_get("next_update")?),
            der: r.try_get("der")?,
        })
    })
    .transpose()
}

/// Stores (or replaces) the cached response for a serial.
pub async fn put_ocsp(store: &Store, issuer_id: i64, serial: &str, o: &OcspRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO ocsp_responses (issuer_id, serial, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (issuer_id, serial) DO UPDATE SET this_update = excluded.this_update, \
         next_update = excluded.next_update, der = excluded.der",
    )
    .bind(issuer_id)
    .bind(serial)
    .bind(o.this_update.millis())
    .bind(o.next_update.millis())
    .bind(o.der.clone())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Drops cached responses of an issuer (all, or one serial).
pub async fn drop_ocsp(tx: &mut WriteTx, issuer_id: i64, serial: Option<&str>) -> Result<()> {
    sqlx::query("DELETE FROM ocsp_responses WHERE issuer_id = $1 AND ($2 IS NULL OR serial = $2)")
        .bind(issuer_id)
        .bind(serial.map(str::to_owned))
        .execute(tx.conn())
        .await?;
    // Every process's in-memory answers are stale too.
    bump_ocsp_generation(tx).await
}

/// Bumps the OCSP generation (table `ocsp_generation`): every process
/// forgets its in-memory OCSP state at its next poll.
async fn bump_ocsp_generation(tx: &mut WriteTx) -> Result<()> {
    sqlx::query("UPDATE ocsp_generation SET seq = seq + 1 WHERE id = 1")
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The OCSP generation: changes whenever [`drop_ocsp`] runs, in any
/// process. One row by primary key: cheap enough to poll.
pub async fn ocsp_generation(store: &Store) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT seq FROM ocsp_generation WHERE id = 1")
            .fetch_one(store.pool())
            .await?,
    )
}
