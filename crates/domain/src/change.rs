//! 证书变更: the rules of a change order, apart from the order machine
//! ([`crate::order::transition_of`]) they run in.
//!
//! A change keeps the enterprise (the same 统一社会信用代码) and the
//! application; what may change is what the license says (名称, 法定代表人,
//! 住所 …). Changed data is checked again with a license uploaded to the
//! change order itself (the old order's license shows the old data), and
//! a change that changes nothing is refused: it would only revoke a good
//! certificate.

use crate::wizard::EnterpriseIdentity;
use crate::Refusal;

/// One field that differs between the certificate's enterprise and the
/// change order's: the counter and the applicant see these side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field's label (名称, 法定代表人 …).
    pub label: &'static str,
    /// As on the certificate's order.
    pub before: String,
    /// As on the change order.
    pub after: String,
}

/// Reads one field of step 3.
type Field = fn(&EnterpriseIdentity) -> &String;

/// The fields of step 3 that differ, in the order the form shows them.
pub fn enterprise_changes(
    before: &EnterpriseIdentity,
    after: &EnterpriseIdentity,
) -> Vec<FieldChange> {
    let fields: [(&'static str, Field); 9] = [
        ("企业名称", |e| &e.name),
        ("统一社会信用代码", |e| &e.uscc),
        ("类型", |e| &e.kind),
        ("法定代表人", |e| &e.legal_representative),
        ("住所", |e| &e.address),
        ("注册资本", |e| &e.registered_capital),
        ("成立日期", |e| &e.established),
        ("注册地", |e| &e.registered_place),
        ("企业性质", |e| &e.nature),
    ];
    fields
        .into_iter()
        .filter(|(_, get)| get(before) != get(after))
        .map(|(label, get)| FieldChange {
            label,
            before: get(before).clone(),
            after: get(after).clone(),
        })
        .collect()
}

/// Checks step 3 of a change order: the same enterprise, something
/// changed, and a license uploaded to this order.
pub fn check_enterprise(
    before: &EnterpriseIdentity,
    after: &EnterpriseIdentity,
    license_uploaded: bool,
) -> Result<(), Refusal> {
    if before.uscc != after.uscc {
        return Err(Refusal::InvalidField(
            "统一社会信用代码与原证书不一致：证书变更只能变更同一企业的信息，其他企业请办理证书新办"
                .into(),
        ));
    }
    if enterprise_changes(before, after).is_empty() {
        return Err(Refusal::InvalidField(
            "填写的企业信息与原证书完全一致，无需办理证书变更；如只需延长有效期，请办理证书更新"
                .into(),
        ));
    }
    if !license_uploaded {
        return Err(Refusal::InvalidField(
            "证书变更须上传变更后的营业执照，请先在本步上传营业执照".into(),
        ));
    }
    Ok(())
}

/// Checks step 2 of a change order: the certificate's application.
pub fn check_application(before: &str, after: &str) -> Result<(), Refusal> {
    if before == after {
        Ok(())
    } else {
        Err(Refusal::InvalidField(
            "证书变更不能更换应用；如需其他应用的证书，请办理证书新办".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn enterprise() -> EnterpriseIdentity {
        EnterpriseIdentity {
            name: "枣庄市示例建设有限公司".into(),
            uscc: "91370400MA3C5XYZ1K".into(),
            legal_representative: "张三".into(),
            ..EnterpriseIdentity::default()
        }
    }

    #[test]
    fn a_new_name_with_a_license_is_a_change() {
        let before = enterprise();
        let mut after = enterprise();
        after.name = "枣庄市示例工程有限公司".into();
        assert_eq!(check_enterprise(&before, &after, true), Ok(()));
        assert_eq!(
            enterprise_changes(&before, &after),
            vec![FieldChange {
                label: "企业名称",
                before: before.name.clone(),
                after: after.name.clone(),
            }]
        );
        let refused = check_enterprise(&before, &after, false).unwrap_err();
        assert!(refused.message_zh().contains("上传变更后的营业执照"));
    }

    #[test]
    fn another_enterprise_or_no_change_is_refused() {
        let before = enterprise();
        let mut other = enterprise();
        other.uscc = "91370400MA3C5XYZ2H".into();
        other.name = "别的公司".into();
        assert!(check_enterprise(&before, &other, true)
            .unwrap_err()
            .message_zh()
            .contains("统一社会信用代码与原证书不一致"));
        assert!(check_enterprise(&before, &before, true)
            .unwrap_err()
            .message_zh()
            .contains("无需办理证书变更"));
        assert!(check_application("ztggzy", "other").is_err());
        assert_eq!(check_application("ztggzy", "ztggzy"), Ok(()));
    }
}
