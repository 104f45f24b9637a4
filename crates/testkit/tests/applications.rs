//! The 应用 catalogue on SQLite and PostgreSQL: demo seeds, add, edit,
//! refusals, audit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_domain::application::Application;
use certhall_domain::audit::Actor;
use certhall_testkit::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue() {
    for app in TestApp::each().await {
        let be = app.backend();
        let s = &app.services;
        s.ca_seed_profiles().await.unwrap();
        s.ensure_demo_applications().await.unwrap();
        s.ensure_demo_applications().await.unwrap(); // idempotent
        let apps = s.applications(true).await.unwrap();
        assert_eq!(apps.len(), 3, "{be}");
        assert!(apps.iter().any(|a| a.name == "枣庄公共资源交易"));

        let actor = Actor::Cli("admin".into());
        let mut new = Application {
            code: "test-app".into(),
            name: "测试平台".into(),
            profile: "enterprise".into(),
            key_kind: certhall_domain::production::KeyKind::P256,
            validity_days: 730,
            price_fen: 50_000,
            description: "测试".into(),
            active: true,
        };
        s.save_application(&new, false, actor.clone())
            .await
            .unwrap();
        let again = s
            .save_application(&new, false, actor.clone())
            .await
            .unwrap_err();
        assert_eq!(again.refusal().unwrap().code(), "application_exists");
        new.active = false;
        new.price_fen = 45_000;
        s.save_application(&new, true, actor.clone()).await.unwrap();
        assert_eq!(s.application("test-app").await.unwrap(), new);
        assert_eq!(
            s.applications(true).await.unwrap().len(),
            3,
            "{be}: inactive listed"
        );
        assert_eq!(s.applications(false).await.unwrap().len(), 4);

        let unknown_profile = Application {
            code: "x-app".into(),
            profile: "nope".into(),
            ..new.clone()
        };
        let err = s
            .save_application(&unknown_profile, false, actor.clone())
            .await
            .unwrap_err();
        assert_eq!(err.refusal().unwrap().code(), "profile_not_found");
        let invalid = Application {
            code: "BAD CODE".into(),
            ..new.clone()
        };
        let err = s
            .save_application(&invalid, false, actor)
            .await
            .unwrap_err();
        assert_eq!(err.refusal().unwrap().code(), "invalid_application");
        let missing = s.application("nope").await.unwrap_err();
        assert_eq!(missing.refusal().unwrap().code(), "application_not_found");
        s.verify_audit_chain().await.unwrap().unwrap();
    }
}
