//! Deterministic synthetic mailboxes.
//!
//! Each message is kept as a small [`Recipe`]; its RFC 5322 text is rendered
//! on demand. Everything in a rendered message (words, boundaries, attachment
//! bytes) comes from the recipe's seed through `Mix`, so the same recipe
//! always renders the same bytes, and sizes are known without rendering.
//!
//! This file is the public surface ([`generate`], [`standard_labels`],
//! [`message_id_for`], [`SYSTEM_LABELS`], [`Recipe`]) and the planning of a
//! mailbox: threads, people, sizes and labels drawn from a seeded RNG. The
//! rest is split by concern:
//! - `pools`: the static tables (cultures, contacts, services, word lists);
//! - `layout`: the `Mix` mixer, lines of words of known length, and the
//!   byte sinks that either write or count;
//! - `headers`: RFC 5322 header pieces (encoded words, dates, ids, boundaries);
//! - `render`: a [`Recipe`] turned into bytes.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::sim::mailbox::{Body, Label, LabelType, Mailbox, SimMessage};

mod headers;
mod layout;
mod pools;
mod render;
#[cfg(test)]
mod tests;

pub(crate) use headers::mailbox_str;
use pools::{
    contact, is_colleague, is_family, CONTACTS, PERSONAL_SUBJECTS, SERVICES, WEEKDAYS,
    WORK_SUBJECTS,
};

const DAY_MS: i64 = 86_400_000;
/// Messages spread over about three years before "now".
const SPAN_MS: i64 = 3 * 365 * DAY_MS;

/// Gmail's system labels, in the order labels.list returns them.
const SYSTEM_LABELS: [&str; 14] = [
    "CHAT",
    "SENT",
    "INBOX",
    "IMPORTANT",
    "TRASH",
    "DRAFT",
    "SPAM",
    "CATEGORY_FORUMS",
    "CATEGORY_UPDATES",
    "CATEGORY_PERSONAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_SOCIAL",
    "STARRED",
    "UNREAD",
];

/// User labels of generated mailboxes; ids are `Label_1`.. in this order.
const USER_LABELS: [&str; 8] = [
    "Receipts",
    "Travel",
    "Work",
    "Work/Projects",
    "Newsletters",
    "Family",
    "Finance",
    "Reading list",
];
const RECEIPTS: &str = "Label_1";
const TRAVEL: &str = "Label_2";
const WORK: &str = "Label_3";
const PROJECTS: &str = "Label_4";
const NEWSLETTERS: &str = "Label_5";
const FAMILY: &str = "Label_6";
const FINANCE: &str = "Label_7";
const READING: &str = "Label_8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    De,
    Fr,
    Es,
    Ja,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Personal,
    Work,
    Newsletter,
    Notification,
    Social,
    Forum,
    Chat,
}

/// Who sent or received a message. Contacts and services are indices into
/// static tables, so a recipe stores two bytes instead of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    User,
    Contact(u16),
    Service(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Pdf,
    Png,
    Jpg,
    Zip,
    Txt,
    Ics,
}

#[derive(Debug)]
struct Attachment {
    kind: FileKind,
    /// Decoded size in bytes.
    size: u32,
    name: Box<str>,
}

/// Everything needed to render one generated message.
#[derive(Debug)]
pub(crate) struct Recipe {
    /// Drives words, boundaries, ids and attachment bytes; also the token
    /// of this message's Message-ID.
    seed: u64,
    date_ms: i64,
    /// Sender's UTC offset in minutes, for the Date header.
    tz_min: i16,
    style: Style,
    lang: Lang,
    /// multipart/alternative with an HTML copy of the text.
    html: bool,
    from: Party,
    to: Box<[Party]>,
    cc: Box<[Party]>,
    user: Arc<str>,
    /// Thread subject, decoded, without "Re: ".
    subject: Arc<str>,
    reply: bool,
    /// Seeds of earlier messages of the thread (References), oldest first.
    refs: Box<[u64]>,
    /// Exact byte length of the text/plain body.
    text_len: u32,
    /// Repeated product cards that make newsletter HTML heavy.
    html_blocks: u16,
    attachments: Box<[Attachment]>,
}

// ---------------------------------------------------------------------------
// Mailbox generation

/// The labels every mailbox has: system labels, then user labels.
pub(crate) fn standard_labels(user: &[&str]) -> Vec<Label> {
    let mut labels: Vec<Label> = SYSTEM_LABELS
        .iter()
        .map(|&id| Label {
            id: id.to_string(),
            name: id.to_string(),
            kind: LabelType::System,
        })
        .collect();
    labels.extend(user.iter().enumerate().map(|(i, &name)| Label {
        id: format!("Label_{}", i + 1),
        name: name.to_string(),
        kind: LabelType::User,
    }));
    labels
}

/// Date-ordered id: sorting ids as strings descending is newest first.
pub(crate) fn message_id_for(internal_date_ms: i64, counter: u64) -> String {
    format!(
        "{:016x}",
        ((internal_date_ms.max(0) as u64) << 20) | (counter & 0xF_FFFF)
    )
}

/// A unique id for a message of that date, not yet in `taken`.
fn unique_id(
    taken: &std::collections::BTreeMap<String, SimMessage>,
    internal_date_ms: i64,
    counter: u64,
) -> String {
    let mut c = counter;
    loop {
        let id = message_id_for(internal_date_ms, c);
        if !taken.contains_key(&id) {
            return id;
        }
        c += 1;
    }
}

/// Fills a subject template.
fn fill_subject(t: &str, rng: &mut ChaCha8Rng) -> String {
    t.replace("{n}", &rng.gen_range(2..60).to_string())
        .replace("{id}", &rng.gen_range(1_000..99_999).to_string())
        .replace("{w}", WEEKDAYS[rng.gen_range(0..WEEKDAYS.len())])
}

struct ThreadPlan {
    style: Style,
    len: usize,
    subject: Arc<str>,
    /// Main correspondent (contact) and others copied in.
    people: Vec<u16>,
    service: Option<u8>,
    user_labels: Vec<&'static str>,
    category: &'static str,
    archived: bool,
    spam: bool,
    trash: bool,
}

/// Zipf-like pick of a contact: a few people write most of the mail.
fn pick_contact(rng: &mut ChaCha8Rng) -> u16 {
    let x: f64 = rng.gen();
    ((x * x * x) * f64::from(CONTACTS)) as u16
}

fn plan_thread(rng: &mut ChaCha8Rng) -> ThreadPlan {
    let r: f64 = rng.gen();
    let style = match r {
        r if r < 0.22 => Style::Personal,
        r if r < 0.32 => Style::Work,
        r if r < 0.64 => Style::Newsletter,
        r if r < 0.84 => Style::Notification,
        r if r < 0.92 => Style::Social,
        r if r < 0.995 => Style::Forum,
        _ => Style::Chat,
    };
    let conversational = matches!(
        style,
        Style::Personal | Style::Work | Style::Forum | Style::Chat
    );
    let len = if !conversational {
        1
    } else {
        let r: f64 = rng.gen();
        let one = if style == Style::Forum { 0.35 } else { 0.65 };
        if r < one {
            1
        } else if r < 0.97 {
            // Short exchanges are much more common than long ones.
            let u: f64 = rng.gen();
            2 + (u * u * 9.0) as usize
        } else {
            rng.gen_range(11..=30)
        }
    };
    let mut people = vec![pick_contact(rng)];
    if matches!(style, Style::Work | Style::Forum) || rng.gen_bool(0.15) {
        for _ in 0..rng.gen_range(1..=3) {
            people.push(pick_contact(rng));
        }
    }
    people.dedup();
    let service = match style {
        Style::Newsletter | Style::Notification | Style::Social | Style::Forum => {
            let candidates: Vec<u8> = (0..SERVICES.len() as u8)
                .filter(|&i| SERVICES[usize::from(i)].style == style)
                .collect();
            Some(candidates[rng.gen_range(0..candidates.len())])
        }
        _ => None,
    };
    let subject = match (style, service) {
        (_, Some(s)) => {
            let subjects = SERVICES[usize::from(s)].subjects;
            fill_subject(subjects[rng.gen_range(0..subjects.len())], rng)
        }
        (Style::Work, _) => fill_subject(WORK_SUBJECTS[rng.gen_range(0..WORK_SUBJECTS.len())], rng),
        (Style::Chat, _) => format!("Chat with {}", contact(people[0]).name),
        _ => fill_subject(
            PERSONAL_SUBJECTS[rng.gen_range(0..PERSONAL_SUBJECTS.len())],
            rng,
        ),
    };
    let category = match style {
        Style::Personal | Style::Work | Style::Chat => "CATEGORY_PERSONAL",
        Style::Newsletter if rng.gen_bool(0.3) => "CATEGORY_UPDATES",
        Style::Newsletter => "CATEGORY_PROMOTIONS",
        Style::Notification => "CATEGORY_UPDATES",
        Style::Social => "CATEGORY_SOCIAL",
        Style::Forum => "CATEGORY_FORUMS",
    };
    let mut user_labels = Vec::new();
    match style {
        Style::Work if rng.gen_bool(0.5) => {
            user_labels.push(WORK);
            if rng.gen_bool(0.4) {
                user_labels.push(PROJECTS);
            }
        }
        Style::Personal if is_family(people[0]) => user_labels.push(FAMILY),
        Style::Personal if subject.contains("Trip") && rng.gen_bool(0.7) => {
            user_labels.push(TRAVEL)
        }
        Style::Newsletter if rng.gen_bool(0.35) => user_labels.push(NEWSLETTERS),
        _ => {}
    }
    if let Some(l) = service.and_then(|s| SERVICES[usize::from(s)].label) {
        if rng.gen_bool(0.35) {
            user_labels.push(l);
        }
    }
    let archived = rng.gen_bool(match style {
        Style::Newsletter | Style::Social => 0.35,
        Style::Notification => 0.45,
        _ => 0.25,
    });
    let single_inbound = len == 1 && style != Style::Chat;
    let spam = single_inbound && rng.gen_bool(0.022);
    let trash = single_inbound && !spam && rng.gen_bool(0.022);
    ThreadPlan {
        style,
        len,
        subject: subject.into(),
        people,
        service,
        user_labels,
        category,
        archived,
        spam,
        trash,
    }
}

/// Size class of a message: (text length, newsletter blocks, attachments).
fn plan_body(rng: &mut ChaCha8Rng, style: Style, subject: &str) -> (u32, u16, Vec<Attachment>) {
    let text_len = match style {
        Style::Chat => rng.gen_range(80..400),
        Style::Newsletter => rng.gen_range(1_500..5_000),
        _ => (rng.gen_range(5.5f64..8.6)).exp() as u32, // ~250 B .. 5.4 KB
    };
    let blocks = if style == Style::Newsletter {
        rng.gen_range(8..40)
    } else {
        0
    };
    let mut attachments = Vec::new();
    if matches!(
        style,
        Style::Personal | Style::Work | Style::Notification | Style::Forum
    ) {
        let r: f64 = rng.gen();
        // Only ~2/3 of messages can carry files, so these rates are scaled
        // to give ~0.2% huge (2-8 MB) and ~5% large (50 KB-1 MB) overall.
        let sizes: Vec<u32> = if r < 0.003 {
            vec![rng.gen_range(1_500_000..6_000_000)]
        } else if r < 0.078 {
            let total = (rng.gen_range(10.6f64..13.5)).exp() as u32; // 40..730 KB raw
            if rng.gen_bool(0.3) {
                vec![total / 2, total - total / 2]
            } else {
                vec![total]
            }
        } else if r < 0.20 {
            vec![rng.gen_range(2_000..18_000)]
        } else {
            vec![]
        };
        for size in sizes {
            attachments.push(plan_attachment(rng, size, style, subject));
        }
    }
    (text_len, blocks, attachments)
}

fn plan_attachment(rng: &mut ChaCha8Rng, size: u32, style: Style, subject: &str) -> Attachment {
    let n = rng.gen_range(100..9_999);
    let (kind, name) = if style == Style::Notification {
        (FileKind::Pdf, format!("Invoice_{n}.pdf"))
    } else {
        match rng.gen_range(0..12) {
            0 => (FileKind::Pdf, format!("scan_{n}.pdf")),
            1 => (FileKind::Pdf, "Präsentation_Q3.pdf".to_string()),
            2 => (FileKind::Pdf, "見積書.pdf".to_string()),
            3 => (FileKind::Pdf, "résumé.pdf".to_string()),
            4 | 5 => (FileKind::Jpg, format!("IMG_{n}.jpg")),
            6 => (FileKind::Png, format!("screenshot-{n}.png")),
            7 => (FileKind::Zip, "photos.zip".to_string()),
            8 => (FileKind::Zip, format!("backup_{n}.zip")),
            9 if size < 200_000 => (FileKind::Txt, "notes.txt".to_string()),
            10 if size < 200_000 && subject.is_ascii() => (FileKind::Ics, "invite.ics".to_string()),
            _ => (FileKind::Pdf, format!("document_{n}.pdf")),
        }
    };
    Attachment {
        kind,
        size: size.max(256),
        name: name.into(),
    }
}

/// Generates a mailbox of `count` messages for `user_email`, dated over the
/// three years before `now_ms` rounded down to a day. The result depends
/// only on (seed, count, user_email, that day): ids and history ids derive
/// from the dates, so callers pass the simulator's calendar, never the wall
/// clock.
pub fn generate(seed: u64, count: usize, user_email: &str, now_ms: i64) -> Mailbox {
    let now = now_ms.div_euclid(DAY_MS) * DAY_MS;
    // The planning RNG. A seed must give the same mailbox in every build
    // (`--seed` is a promise to users, and tests pin ids), so:
    // - ChaCha8 is a specified stream cipher: rand_chacha checks its stream
    //   against reference vectors, and the rust-random crates make
    //   value-breaking changes only in a new minor version (0.3 -> 0.4),
    //   never in a patch release.
    // - `seed_from_u64` expands the seed with PCG32 (rand_core 0.6); changing
    //   that counts as value-breaking under the same policy.
    // - `gen`, `gen_range` and `gen_bool` are rand 0.8's samplers: stable
    //   within 0.8, free to change in 0.9; Cargo.lock pins the exact versions
    //   of rand, rand_core and rand_chacha.
    // So a rand or rand_chacha upgrade must be checked against the seeded
    // fixture tests: `tests::seed_1_output_is_pinned` (ids, subjects and a
    // hash of every rendered byte) and, in tests/sim.rs,
    // `a_seed_gives_the_same_mailbox_whatever_the_real_date` (ids over HTTP).
    // Rendering does not draw from this RNG but from `Mix`, which is ours
    // and never changes. The few float steps (`exp`, `powf`) use the
    // platform's math library, so the pins hold per platform.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let user: Arc<str> = user_email.into();
    let user_tz: i16 = [-480, -300, 0, 60, 540][(seed % 5) as usize];
    let mut mb = Mailbox {
        labels: standard_labels(&USER_LABELS),
        history_retain: 10_000,
        ..Default::default()
    };
    let mut index = 0u64;
    while (index as usize) < count {
        let plan = plan_thread(&mut rng);
        let len = plan.len.min(count - index as usize);
        let back: f64 = rng.gen();
        // Skewed towards recent mail, as real mailboxes grow over time.
        let mut t = now - (back.powf(1.3) * SPAN_MS as f64) as i64;
        t -= t % 1000;
        let mut refs: Vec<u64> = Vec::new();
        let mut thread_id: Option<String> = None;
        let mut prev_from = Party::User;
        for k in 0..len {
            if k > 0 {
                let gap_min = (rng.gen_range(1.0f64..9.5)).exp() as i64; // 3 min .. 9 days
                t = (t + gap_min * 60_000).min(now - 60_000);
            }
            let main = Party::Contact(plan.people[0]);
            let from = match plan.service {
                Some(s) if plan.style != Style::Forum => Party::Service(s),
                _ => {
                    let user_turn = if k == 0 {
                        rng.gen_bool(0.2)
                    } else {
                        prev_from != Party::User && rng.gen_bool(0.6)
                    };
                    if user_turn {
                        Party::User
                    } else {
                        Party::Contact(plan.people[rng.gen_range(0..plan.people.len())])
                    }
                }
            };
            prev_from = from;
            let (to, cc): (Vec<Party>, Vec<Party>) = match (plan.style, from) {
                (Style::Forum, _) => (vec![Party::Service(plan.service.unwrap_or(0))], vec![]),
                (_, Party::Service(_)) => (vec![Party::User], vec![]),
                (_, Party::User) => (
                    vec![main],
                    plan.people[1..]
                        .iter()
                        .map(|&c| Party::Contact(c))
                        .collect(),
                ),
                (_, sender) => (
                    vec![Party::User],
                    plan.people
                        .iter()
                        .map(|&c| Party::Contact(c))
                        .filter(|&p| p != sender)
                        .collect(),
                ),
            };
            let lang = match (from, to[0]) {
                (Party::Service(s), _) => SERVICES[usize::from(s)].lang,
                (Party::User, Party::Contact(c)) | (Party::Contact(c), _) => contact(c).lang,
                _ => Lang::En,
            };
            let tz_min = match from {
                Party::User => user_tz,
                Party::Contact(c) => contact(c).tz_min,
                Party::Service(_) => 0,
            };
            let (text_len, html_blocks, attachments) =
                plan_body(&mut rng, plan.style, &plan.subject);
            let html = match plan.style {
                Style::Chat => false,
                Style::Newsletter | Style::Social | Style::Notification => true,
                _ => rng.gen_bool(0.65),
            };
            let msg_seed: u64 = rng.gen();
            let mut recipe = Recipe {
                seed: msg_seed,
                date_ms: t,
                tz_min,
                style: plan.style,
                lang,
                html,
                from,
                to: to.into(),
                cc: cc.into(),
                user: user.clone(),
                subject: plan.subject.clone(),
                reply: k > 0,
                // Clients trim long References: keep the root and the last 9.
                refs: refs
                    .iter()
                    .take(1)
                    .chain(refs.iter().skip(refs.len().saturating_sub(9).max(1)))
                    .copied()
                    .collect(),
                text_len,
                html_blocks,
                attachments: attachments.into(),
            };
            let f = recipe.frame();
            recipe.text_len = recipe
                .text_len
                .max((f.hello.len() + f.bye.len() + 3) as u32);
            if let Some(i) = recipe
                .attachments
                .iter()
                .position(|a| a.kind == FileKind::Ics)
            {
                let len = recipe.ics().len() as u32;
                if let Some(a) = recipe.attachments.get_mut(i) {
                    a.size = len;
                }
            }
            refs.push(msg_seed);

            let labels = message_labels(&mut rng, &plan, from, k + 1 == len, now - t);
            let id = unique_id(&mb.messages, t, index);
            let thread = thread_id.get_or_insert_with(|| id.clone()).clone();
            let from_p = recipe.who(from);
            let to_str = recipe
                .to
                .iter()
                .chain(recipe.cc.iter())
                .map(|&p| {
                    let w = recipe.who(p);
                    mailbox_str(&w.name, &w.addr)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let msg = SimMessage {
                id: id.clone(),
                thread_id: thread,
                label_ids: labels,
                internal_date_ms: t,
                history_id: 0,
                size: recipe.size(),
                from: mailbox_str(&from_p.name, &from_p.addr),
                to: to_str,
                subject: recipe.subject(),
                attachment_names: recipe
                    .attachments
                    .iter()
                    .map(|a| a.name.to_string())
                    .collect(),
                snippet: recipe.snippet(),
                body: Body::Generated(Arc::new(recipe)),
            };
            mb.messages.insert(id, msg);
            index += 1;
        }
    }
    // History ids follow arrival order.
    let mut next = 1_000u64;
    for m in mb.messages.values_mut() {
        next += 1 + (m.internal_date_ms as u64 % 3);
        m.history_id = next;
    }
    mb.history_id = next;
    mb.history_floor = next;
    mb
}

fn message_labels(
    rng: &mut ChaCha8Rng,
    plan: &ThreadPlan,
    from: Party,
    last: bool,
    age_ms: i64,
) -> Vec<String> {
    let mut l: Vec<&str> = Vec::new();
    if plan.style == Style::Chat {
        l.push("CHAT");
    } else if from == Party::User {
        // An unsent reply at the end of a thread is a draft.
        if last && plan.len > 1 && rng.gen_bool(0.05) {
            l.push("DRAFT");
        } else {
            l.push("SENT");
            if rng.gen_bool(0.3) {
                l.push("IMPORTANT");
            }
        }
    } else if plan.spam {
        l.push("SPAM");
        if rng.gen_bool(0.7) {
            l.push("UNREAD");
        }
    } else {
        l.push(plan.category);
        if plan.trash {
            l.push("TRASH");
        } else if !plan.archived {
            l.push("INBOX");
        }
        let p_unread: f64 = match plan.style {
            Style::Newsletter => 0.7,
            Style::Social | Style::Forum => 0.55,
            Style::Notification => 0.45,
            _ => 0.15,
        };
        // Recent mail is more often still unread.
        let p = if age_ms < 30 * DAY_MS {
            (p_unread * 1.6).min(0.95)
        } else {
            p_unread
        };
        if rng.gen_bool(p) {
            l.push("UNREAD");
        }
        let p_important = match plan.style {
            Style::Personal | Style::Work => 0.45,
            Style::Notification => 0.2,
            _ => 0.03,
        };
        if rng.gen_bool(p_important) {
            l.push("IMPORTANT");
        }
    }
    if !plan.spam && rng.gen_bool(0.05) && !l.contains(&"DRAFT") {
        l.push("STARRED");
    }
    if !plan.spam {
        l.extend(plan.user_labels.iter().copied());
    }
    if plan.style == Style::Personal
        && plan.user_labels.is_empty()
        && is_colleague(plan.people[0])
        && rng.gen_bool(0.3)
    {
        l.push(WORK);
    }
    let mut l: Vec<String> = l.into_iter().map(String::from).collect();
    l.sort();
    l.dedup();
    l
}
