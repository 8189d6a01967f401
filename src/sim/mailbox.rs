//! The simulated mailbox: messages, labels, threads and the history log of
//! one user. Pure data; no HTTP here.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a message's bytes are obtained. Generated mailboxes keep only a small
/// recipe and render the RFC 5322 text on demand, so a 100k-message mailbox
/// with multi-megabyte attachments fits in a few hundred MB.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// Bytes loaded from an mbox file (or inserted through the admin API).
    Stored(Arc<[u8]>),
    /// A generated message: rendered deterministically from its recipe.
    Generated(Arc<crate::sim::generate::Recipe>),
}

#[derive(Debug, Clone)]
pub struct SimMessage {
    /// 16 lowercase hex digits, as Gmail's ids look. Sorting ids descending
    /// sorts newest first (the id encodes internal date then a counter).
    pub(crate) id: String,
    pub(crate) thread_id: String,
    /// Label ids (system ids like "INBOX", user ids like "Label_3"), sorted.
    pub(crate) label_ids: Vec<String>,
    /// Milliseconds since the Unix epoch (Gmail's internalDate).
    pub(crate) internal_date_ms: i64,
    /// History id of the last change to this message.
    pub(crate) history_id: u64,
    /// Length of the raw RFC 5322 bytes (Gmail's sizeEstimate).
    pub(crate) size: usize,
    /// Decoded (RFC 2047) header values, for search and summaries.
    pub(crate) from: String,
    /// To, Cc and Bcc, decoded, joined with ", ".
    pub(crate) to: String,
    pub(crate) subject: String,
    /// File names of attachments (empty when none).
    pub(crate) attachment_names: Vec<String>,
    /// First ~200 characters of the best text body, whitespace folded,
    /// HTML-escaped as Gmail does (&#39; etc.).
    pub(crate) snippet: String,
    pub(crate) body: Body,
}

impl SimMessage {
    /// The whole RFC 5322 message.
    pub(crate) fn raw(&self) -> Cow<'_, [u8]> {
        match &self.body {
            Body::Stored(b) => Cow::Borrowed(&b[..]),
            Body::Generated(r) => Cow::Owned(r.render()),
        }
    }

    /// Plain text of the message body (decoded), for bare-word search.
    /// Generated messages produce it without rendering attachments.
    pub(crate) fn body_text(&self) -> String {
        match &self.body {
            Body::Stored(b) => crate::sim::render::text_of(b),
            Body::Generated(r) => r.body_text(),
        }
    }

    /// The Message-ID header's value without angle brackets (rfc822msgid:).
    pub(crate) fn message_id_header(&self) -> Option<String> {
        let id = match &self.body {
            Body::Generated(r) => r.message_id(),
            Body::Stored(b) => {
                let head_end = b
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .or_else(|| b.windows(2).position(|w| w == b"\n\n"))
                    .unwrap_or(b.len());
                let head = String::from_utf8_lossy(&b[..head_end]);
                let mut lines = head.lines();
                let mut found = None;
                while let Some(line) = lines.next() {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    if name.eq_ignore_ascii_case("message-id") {
                        // A folded header has its value on the next line.
                        let value = match value.trim() {
                            "" => lines.next().unwrap_or("").trim().to_string(),
                            v => v.to_string(),
                        };
                        found = Some(value);
                        break;
                    }
                }
                found?
            }
        };
        Some(
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        )
    }

    pub(crate) fn has_label(&self, id: &str) -> bool {
        self.label_ids.iter().any(|l| l == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LabelType {
    System,
    User,
}

#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: LabelType,
}

/// Why labels.create, update, patch or delete refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelRefused {
    /// 409 "Label name exists or conflicts".
    Exists,
    /// 400 "Invalid label name".
    Invalid,
    /// No label with that id: 404.
    NotFound,
    /// A system label cannot be renamed (400 "Invalid label") or deleted
    /// (400 "Invalid delete request").
    System,
}

/// One entry of the history log (Gmail's users.history resource).
#[derive(Debug, Clone)]
pub(crate) struct HistoryRecord {
    pub(crate) id: u64,
    pub(crate) message_id: String,
    pub(crate) thread_id: String,
    pub(crate) change: Change,
}

#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A message arrived; its label ids at that moment.
    Added {
        label_ids: Vec<String>,
    },
    Deleted,
    LabelsAdded {
        label_ids: Vec<String>,
        now: Vec<String>,
    },
    LabelsRemoved {
        label_ids: Vec<String>,
        now: Vec<String>,
    },
}

/// One user's mailbox.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// Keyed by id; BTreeMap so iteration in reverse is newest first.
    pub messages: BTreeMap<String, SimMessage>,
    pub(crate) labels: Vec<Label>,
    /// The current history id (the newest change).
    pub(crate) history_id: u64,
    /// Retained history, oldest first. A startHistoryId older than the first
    /// retained record (or than `history_floor`) answers 404.
    pub(crate) history: std::collections::VecDeque<HistoryRecord>,
    /// Oldest history id a client may still start from.
    pub(crate) history_floor: u64,
    /// How many history records to keep before dropping the oldest.
    pub(crate) history_retain: usize,
}

/// A label id that does not exist in this mailbox.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Invalid label: {0}")]
pub(crate) struct InvalidLabel(pub String);

impl Mailbox {
    pub(crate) fn has_label_id(&self, id: &str) -> bool {
        self.labels.iter().any(|l| l.id == id)
    }

    /// Check every id in `ids` names a label here.
    pub(crate) fn check_labels(&self, ids: &[String]) -> Result<(), InvalidLabel> {
        match ids.iter().find(|id| !self.has_label_id(id)) {
            Some(bad) => Err(InvalidLabel(bad.clone())),
            None => Ok(()),
        }
    }

    fn record(&mut self, message_id: &str, thread_id: &str, change: Change) -> u64 {
        // Gmail's history ids rise with gaps (other changes in the store
        // take ids too); a client that expects +1 steps, or uses an id
        // between records, must meet them. The gap is a hash, so a seed
        // still gives the same ids.
        let gap = message_id
            .bytes()
            .fold(self.history_id ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            })
            >> 62;
        self.history_id += 1 + gap;
        let id = self.history_id;
        self.history.push_back(HistoryRecord {
            id,
            message_id: message_id.to_string(),
            thread_id: thread_id.to_string(),
            change,
        });
        while self.history.len() > self.history_retain.max(1) {
            if let Some(dropped) = self.history.pop_front() {
                // A client must start at or after the newest dropped record.
                self.history_floor = self.history_floor.max(dropped.id);
            }
        }
        id
    }

    /// Whether Gmail takes `name` as a user label's name: not empty or
    /// overlong, no control character or stray `/`, not a system label's
    /// name or id in any case, not "Muted" (reserved; GYB#228), and not one
    /// of the localised system label names below.
    fn valid_label_name(name: &str) -> bool {
        const RESERVED: &[&str] = &[
            "inbox",
            "sent",
            "draft",
            "drafts",
            "spam",
            "trash",
            "unread",
            "starred",
            "important",
            "chat",
            "chats",
            "muted",
            "all mail",
            "scheduled",
            "snoozed",
            "category_personal",
            "category_social",
            "category_promotions",
            "category_updates",
            "category_forums",
        ];
        // Localised system label names. Restores from non-English accounts
        // fail on such names (got-your-back#350, #429, #452); whether Gmail
        // refuses them for every account or only in that locale is not
        // documented. The simulator takes the harsher plausible reading and
        // refuses this handful always (German, French, Spanish, Italian,
        // Portuguese, Dutch inbox, sent, trash and drafts).
        const LOCALISED: &[&str] = &[
            "posteingang",
            "gesendet",
            "papierkorb",
            "entwürfe",
            "boîte de réception",
            "messages envoyés",
            "corbeille",
            "brouillons",
            "bandeja de entrada",
            "enviados",
            "papelera",
            "borradores",
            "posta in arrivo",
            "posta inviata",
            "cestino",
            "bozze",
            "caixa de entrada",
            "lixeira",
            "rascunhos",
            "postvak in",
            "verzonden",
            "prullenbak",
            "concepten",
        ];
        let lower = name.to_lowercase();
        let trimmed = name.trim();
        !(trimmed.is_empty()
            || trimmed != name
            || name.chars().count() > 225
            || name.chars().any(char::is_control)
            || RESERVED.contains(&lower.as_str())
            || LOCALISED.contains(&lower.as_str())
            || name.starts_with('/')
            || name.ends_with('/')
            || name.contains("//"))
    }

    /// Whether a label other than `except` has `name`, in any case.
    fn label_name_taken(&self, name: &str, except: Option<&str>) -> bool {
        let lower = name.to_lowercase();
        self.labels
            .iter()
            .any(|l| Some(l.id.as_str()) != except && l.name.to_lowercase() == lower)
    }

    /// labels.create: a user label named `name`. Refused as Gmail refuses
    /// (see `valid_label_name`); a name already taken, in any case, is a
    /// conflict.
    pub(crate) fn create_label(&mut self, name: &str) -> Result<Label, LabelRefused> {
        if !Self::valid_label_name(name) {
            return Err(LabelRefused::Invalid);
        }
        if self.label_name_taken(name, None) {
            return Err(LabelRefused::Exists);
        }
        let next = self
            .labels
            .iter()
            .filter_map(|l| l.id.strip_prefix("Label_")?.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        let l = Label {
            id: format!("Label_{next}"),
            name: name.to_string(),
            kind: LabelType::User,
        };
        self.labels.push(l.clone());
        Ok(l)
    }

    /// labels.update and labels.patch: rename user label `id` to `name`
    /// (None: patch without a name, the label as it is). The same name
    /// rules as create; the label's own name in another case is no
    /// conflict.
    pub(crate) fn rename_label(
        &mut self,
        id: &str,
        name: Option<&str>,
    ) -> Result<Label, LabelRefused> {
        let i = self
            .labels
            .iter()
            .position(|l| l.id == id)
            .ok_or(LabelRefused::NotFound)?;
        if self.labels[i].kind == LabelType::System {
            return Err(LabelRefused::System);
        }
        if let Some(name) = name {
            if !Self::valid_label_name(name) {
                return Err(LabelRefused::Invalid);
            }
            if self.label_name_taken(name, Some(id)) {
                return Err(LabelRefused::Exists);
            }
            self.labels[i].name = name.to_string();
        }
        Ok(self.labels[i].clone())
    }

    /// labels.delete: user label `id` goes, and off every message that had
    /// it (each such message gets a labelRemoved history record).
    pub(crate) fn delete_label(&mut self, id: &str) -> Result<(), LabelRefused> {
        let l = self
            .labels
            .iter()
            .find(|l| l.id == id)
            .ok_or(LabelRefused::NotFound)?;
        if l.kind == LabelType::System {
            return Err(LabelRefused::System);
        }
        let with: Vec<String> = self
            .messages
            .values()
            .filter(|m| m.has_label(id))
            .map(|m| m.id.clone())
            .collect();
        let remove = [id.to_string()];
        for m in with {
            self.modify(&m, &[], &remove);
        }
        self.labels.retain(|l| l.id != id);
        Ok(())
    }

    /// Add and remove labels on one message (labels already checked).
    /// Writes one history record per direction that changed anything.
    /// None when there is no such message.
    pub(crate) fn modify(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Option<&SimMessage> {
        let m = self.messages.get_mut(id)?;
        let added: Vec<String> = add
            .iter()
            .filter(|l| !m.label_ids.contains(l) && !remove.contains(l))
            .cloned()
            .collect();
        let removed: Vec<String> = remove
            .iter()
            .filter(|l| m.label_ids.contains(l))
            .cloned()
            .collect();
        m.label_ids.retain(|l| !removed.contains(l));
        m.label_ids.extend(added.iter().cloned());
        m.label_ids.sort();
        m.label_ids.dedup();
        let (thread, now) = (m.thread_id.clone(), m.label_ids.clone());
        if !added.is_empty() {
            let h = self.record(
                id,
                &thread,
                Change::LabelsAdded {
                    label_ids: added,
                    now: now.clone(),
                },
            );
            self.messages.get_mut(id)?.history_id = h;
        }
        if !removed.is_empty() {
            let h = self.record(
                id,
                &thread,
                Change::LabelsRemoved {
                    label_ids: removed,
                    now,
                },
            );
            self.messages.get_mut(id)?.history_id = h;
        }
        self.messages.get(id)
    }

    /// Delete a message for good. False when there is no such message.
    pub(crate) fn delete(&mut self, id: &str) -> bool {
        match self.messages.remove(id) {
            Some(m) => {
                self.record(id, &m.thread_id, Change::Deleted);
                true
            }
            None => false,
        }
    }

    /// A new message arrives.
    pub(crate) fn insert(&mut self, mut m: SimMessage) {
        let (id, thread) = (m.id.clone(), m.thread_id.clone());
        let h = self.record(
            &id,
            &thread,
            Change::Added {
                label_ids: m.label_ids.clone(),
            },
        );
        m.history_id = h;
        self.messages.insert(id, m);
    }

    /// Record the messages already here as arrivals at their own history
    /// ids (the newest `history_retain` of them), so that a message's
    /// `historyId` is a valid `startHistoryId`, as on Gmail, and history
    /// from it lists the mail that came after. Ids older than the records
    /// kept answer 404.
    pub(crate) fn record_arrivals(&mut self) {
        let mut arrivals: Vec<&SimMessage> = self.messages.values().collect();
        arrivals.sort_by_key(|m| m.history_id);
        let keep = self.history_retain.max(1);
        let dropped = arrivals.len().saturating_sub(keep);
        self.history = arrivals[dropped..]
            .iter()
            .map(|m| HistoryRecord {
                id: m.history_id,
                message_id: m.id.clone(),
                thread_id: m.thread_id.clone(),
                change: Change::Added {
                    label_ids: m.label_ids.clone(),
                },
            })
            .collect();
        // A start at or after the newest record left out still sees every
        // change after it.
        self.history_floor = match dropped {
            0 => arrivals.first().map_or(self.history_id, |m| m.history_id),
            n => arrivals[n - 1].history_id,
        };
        if let Some(newest) = arrivals.last() {
            self.history_id = self.history_id.max(newest.history_id);
        }
    }

    /// Forget all history so far: any earlier startHistoryId answers 404.
    pub(crate) fn expire_history(&mut self) {
        self.history.clear();
        self.history_floor = self.history_id;
    }
}
