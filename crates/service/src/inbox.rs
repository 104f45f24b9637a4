//! Messages (消息提醒, manual 2.3.6): list, unread count, mark read.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{Message, MessageId};
use certhall_domain::{AccountId, Refusal};
use certhall_store::messages;
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, Services};

/// Messages per page.
pub const PAGE_SIZE: u32 = 20;

/// One page of an account's messages.
#[derive(Debug, Clone)]
pub struct MessagePage {
    /// The messages, newest first.
    pub items: Vec<Message>,
    /// The page number, from 1.
    pub page: u32,
    /// Number of pages (at least 1).
    pub pages: u32,
    /// All messages of the account.
    pub total: u32,
    /// Unread messages of the account.
    pub unread: u32,
}

impl Services {
    /// Page `page` (from 1) of the account's messages, `per_page` a page.
    pub async fn messages(
        &self,
        account: AccountId,
        page: u32,
        per_page: u32,
    ) -> Result<MessagePage> {
        let per_page = per_page.clamp(1, 100);
        let page = page.max(1);
        // One query in the common case: the page and the counts together.
        let (mut items, counts) =
            messages::page_with_counts(&self.store, account, per_page, (page - 1) * per_page)
                .await?;
        let (total, unread) = match counts {
            Some(c) => c,
            None => messages::counts(&self.store, account).await?,
        };
        let pages = total.div_ceil(per_page).max(1);
        let asked = page;
        let page = page.min(pages);
        if page != asked {
            // Past the end: show the last page instead.
            items = messages::list(&self.store, account, per_page, (page - 1) * per_page).await?;
        }
        Ok(MessagePage {
            items,
            page,
            pages,
            total,
            unread,
        })
    }

    /// Marks one of the account's messages read. Marking a read message
    /// again is fine; someone else's message is "not found".
    pub async fn mark_message_read(
        &self,
        account: AccountId,
        id: MessageId,
        meta: &RequestMeta,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        match messages::state(&mut tx, account, id).await? {
            None => Err(Refusal::MessageNotFound.into()),
            Some(false) => Ok(()),
            Some(true) => {
                messages::mark_read(&mut tx, account, id, self.clock.now()).await?;
                append_audit(
                    &mut tx,
                    self.clock.as_ref(),
                    Actor::Account(account),
                    meta,
                    AuditEvent::MessagesRead,
                    json!({ "message": id.0 }),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Marks all the account's messages read; returns how many changed.
    pub async fn mark_all_messages_read(
        &self,
        account: AccountId,
        meta: &RequestMeta,
    ) -> Result<u64> {
        let mut tx = self.store.begin_write().await?;
        let n = messages::mark_all_read(&mut tx, account, self.clock.now()).await?;
        if n > 0 {
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::Account(account),
                meta,
                AuditEvent::MessagesRead,
                json!({ "all": true, "count": n }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}
