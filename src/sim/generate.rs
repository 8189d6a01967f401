//! Deterministic synthetic mailboxes.
//!
//! Each message is kept as a small [`Recipe`]; its RFC 5322 text is rendered
//! on demand. Everything in a rendered message (words, boundaries, attachment
//! bytes) comes from the recipe's seed through [`Mix`], so the same recipe
//! always renders the same bytes, and sizes are known without rendering.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::sim::mailbox::{Body, Label, LabelType, Mailbox, SimMessage};
use crate::sim::render::snippet;

const DAY_MS: i64 = 86_400_000;
/// Messages spread over about three years before "now".
const SPAN_MS: i64 = 3 * 365 * DAY_MS;

/// Gmail's system labels, in the order labels.list returns them.
pub const SYSTEM_LABELS: [&str; 14] = [
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

/// SplitMix64: tiny, fast, and stable forever (unlike a library RNG whose
/// stream may change between versions), so rendered bytes never drift.
#[derive(Clone)]
struct Mix(u64);

impl Mix {
    fn new(seed: u64, stream: u64) -> Mix {
        let mut m = Mix(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        m.next();
        m
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n < 2^32).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        self.fill(&mut v, n);
        v
    }

    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let end = out.len() + n;
        while out.len() + 8 <= end {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        let rest = end - out.len();
        out.extend_from_slice(&self.next().to_le_bytes()[..rest]);
    }
}

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

impl FileKind {
    fn content_type(self) -> &'static str {
        match self {
            FileKind::Pdf => "application/pdf",
            FileKind::Png => "image/png",
            FileKind::Jpg => "image/jpeg",
            FileKind::Zip => "application/zip",
            FileKind::Txt => "text/plain; charset=\"US-ASCII\"",
            FileKind::Ics => "text/calendar; charset=\"UTF-8\"; method=REQUEST",
        }
    }
}

impl FileKind {
    /// Leading and trailing bytes of a file of this kind; random bytes
    /// fill the middle.
    fn magic(self) -> (&'static [u8], &'static [u8]) {
        match self {
            FileKind::Pdf => (
                b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nstream\n",
                b"\nendstream\nendobj\n%%EOF\n",
            ),
            FileKind::Png => (
                b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\x00\x00\x00\x03\x00\x08\x06\x00\x00\x00",
                b"\x00\x00\x00\x00IEND\xaeB`\x82",
            ),
            FileKind::Jpg => (
                b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
                b"\xff\xd9",
            ),
            FileKind::Zip => (
                b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
                b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00",
            ),
            FileKind::Txt | FileKind::Ics => (b"", b""),
        }
    }
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
pub struct Recipe {
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
// Static pools

struct Culture {
    lang: Lang,
    /// (display, ascii) given names and family names.
    firsts: &'static [(&'static str, &'static str)],
    lasts: &'static [(&'static str, &'static str)],
    domains: &'static [&'static str],
    tz_min: i16,
    /// Family name first, no space (山田太郎).
    family_first: bool,
}

const CULTURES: [Culture; 5] = [
    Culture {
        lang: Lang::En,
        firsts: &[
            ("Anna", "anna"),
            ("James", "james"),
            ("Olivia", "olivia"),
            ("Liam", "liam"),
            ("Emma", "emma"),
            ("Noah", "noah"),
            ("Grace", "grace"),
            ("Owen", "owen"),
            ("Zoë", "zoe"),
            ("Renée", "renee"),
            ("Priya", "priya"),
            ("Marcus", "marcus"),
        ],
        lasts: &[
            ("Smith", "smith"),
            ("Johnson", "johnson"),
            ("Brown", "brown"),
            ("O'Neil", "oneil"),
            ("Walker", "walker"),
            ("Clarke", "clarke"),
            ("Patel", "patel"),
            ("Nguyen", "nguyen"),
            ("Kim", "kim"),
            ("Hughes", "hughes"),
        ],
        domains: &[
            "gmail.com",
            "outlook.com",
            "yahoo.com",
            "icloud.com",
            "northwind.example",
        ],
        tz_min: -300,
        family_first: false,
    },
    Culture {
        lang: Lang::De,
        firsts: &[
            ("Jürgen", "juergen"),
            ("Lukas", "lukas"),
            ("Sophie", "sophie"),
            ("Jörg", "joerg"),
            ("Björn", "bjoern"),
            ("Lea", "lea"),
            ("Maximilian", "max"),
            ("Käthe", "kaethe"),
        ],
        lasts: &[
            ("Müller", "mueller"),
            ("Schmidt", "schmidt"),
            ("Schäfer", "schaefer"),
            ("Weiß", "weiss"),
            ("Becker", "becker"),
            ("Hoffmann", "hoffmann"),
            ("Groß", "gross"),
        ],
        domains: &["gmx.de", "web.de", "gmail.com", "northwind.example"],
        tz_min: 60,
        family_first: false,
    },
    Culture {
        lang: Lang::Fr,
        firsts: &[
            ("Amélie", "amelie"),
            ("François", "francois"),
            ("Hélène", "helene"),
            ("Jérôme", "jerome"),
            ("Camille", "camille"),
            ("Léa", "lea"),
        ],
        lasts: &[
            ("Lefèvre", "lefevre"),
            ("Dubois", "dubois"),
            ("Moreau", "moreau"),
            ("Girard", "girard"),
            ("Béranger", "beranger"),
        ],
        domains: &["orange.fr", "free.fr", "gmail.com"],
        tz_min: 60,
        family_first: false,
    },
    Culture {
        lang: Lang::Es,
        firsts: &[
            ("José", "jose"),
            ("María", "maria"),
            ("Lucía", "lucia"),
            ("Andrés", "andres"),
            ("Sofía", "sofia"),
            ("Diego", "diego"),
        ],
        lasts: &[
            ("García", "garcia"),
            ("Martínez", "martinez"),
            ("López", "lopez"),
            ("Núñez", "nunez"),
            ("Müller", "muller"),
        ],
        domains: &["gmail.com", "hotmail.es", "northwind.example"],
        tz_min: 60,
        family_first: false,
    },
    Culture {
        lang: Lang::Ja,
        firsts: &[
            ("太郎", "taro"),
            ("花子", "hanako"),
            ("健", "ken"),
            ("陽菜", "hina"),
            ("翔太", "shota"),
        ],
        lasts: &[
            ("山田", "yamada"),
            ("佐藤", "sato"),
            ("鈴木", "suzuki"),
            ("高橋", "takahashi"),
            ("田中", "tanaka"),
        ],
        domains: &["yahoo.co.jp", "docomo.ne.jp", "gmail.com"],
        tz_min: 540,
        family_first: true,
    },
];

/// Number of distinct contacts a mailbox draws from.
const CONTACTS: u16 = 400;

#[derive(Clone)]
struct Person {
    name: String,
    first: String,
    addr: String,
    lang: Lang,
    tz_min: i16,
}

/// Contact `i` (of `CONTACTS`), built once: recipes look people up on
/// every render.
fn contact(i: u16) -> &'static Person {
    static TABLE: OnceLock<Vec<Person>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..CONTACTS).map(make_contact).collect());
    &table[usize::from(i % CONTACTS)]
}

fn make_contact(i: u16) -> Person {
    let mut m = Mix::new(u64::from(i), 0xC0);
    // English speakers are the most common correspondents.
    let c = &CULTURES[[0, 0, 0, 1, 2, 3, 4][m.below(7)]];
    let (first, fa) = m.pick(c.firsts);
    // Now and then a family name from another culture: "José Müller".
    let lc = if !c.family_first && m.below(5) == 0 {
        &CULTURES[m.below(4)]
    } else {
        c
    };
    let (last, la) = m.pick(lc.lasts);
    let name = if c.family_first {
        format!("{last}{first}")
    } else {
        format!("{first} {last}")
    };
    let domain = m.pick(c.domains);
    let addr = match m.below(3) {
        0 => format!("{fa}.{la}@{domain}"),
        1 => format!("{fa}{la}{}@{domain}", i % 97),
        _ => format!("{}{la}@{domain}", &fa[..1]),
    };
    Person {
        name,
        first: first.to_string(),
        addr,
        lang: c.lang,
        tz_min: c.tz_min,
    }
}

fn is_family(i: u16) -> bool {
    i % 17 == 3
}

fn is_colleague(i: u16) -> bool {
    contact(i).addr.ends_with("@northwind.example")
}

struct Service {
    name: &'static str,
    addr: &'static str,
    style: Style,
    lang: Lang,
    /// Subject templates: `{n}` is a small number, `{id}` a large one,
    /// `{w}` a weekday.
    subjects: &'static [&'static str],
    /// User label the user files this service under, if any.
    label: Option<&'static str>,
}

const SERVICES: &[Service] = &[
    Service {
        name: "Northwind Outfitters",
        addr: "deals@news.northwind-outfitters.example",
        style: Style::Newsletter,
        lang: Lang::En,
        subjects: &[
            "{n}% off everything this weekend",
            "New arrivals you'll love",
            "Last chance: free shipping ends {w}",
        ],
        label: None,
    },
    Service {
        name: "Café Lumière",
        addr: "bonjour@cafe-lumiere.example",
        style: Style::Newsletter,
        lang: Lang::Fr,
        subjects: &[
            "Nouveautés de la semaine",
            "Votre café offert ce {w}",
            "Les recettes d'automne",
        ],
        label: None,
    },
    Service {
        name: "Bookworm Weekly",
        addr: "digest@bookworm.example",
        style: Style::Newsletter,
        lang: Lang::En,
        subjects: &[
            "Your weekly reading digest #{n}",
            "{n} books we can't stop talking about",
        ],
        label: Some(READING),
    },
    Service {
        name: "Tech Brief",
        addr: "newsletter@techbrief.example",
        style: Style::Newsletter,
        lang: Lang::En,
        subjects: &[
            "The Morning Brief: {w} edition",
            "Issue #{n}: chips, clouds & compilers",
        ],
        label: Some(READING),
    },
    Service {
        name: "Müller Elektronik",
        addr: "angebote@mueller-elektronik.example",
        style: Style::Newsletter,
        lang: Lang::De,
        subjects: &[
            "Nur heute: {n}% Rabatt auf Kopfhörer",
            "Ihre Wochenangebote",
        ],
        label: None,
    },
    Service {
        name: "さくらマート",
        addr: "info@sakura-mart.example",
        style: Style::Newsletter,
        lang: Lang::Ja,
        subjects: &["今週のおすすめ商品", "【{n}%オフ】週末限定セール"],
        label: None,
    },
    Service {
        name: "Acme Bank",
        addr: "alerts@acmebank.example",
        style: Style::Notification,
        lang: Lang::En,
        subjects: &[
            "Your statement is ready",
            "Payment received: ${id}.00",
            "Security alert: new sign-in",
        ],
        label: Some(FINANCE),
    },
    Service {
        name: "ParcelPost",
        addr: "tracking@parcelpost.example",
        style: Style::Notification,
        lang: Lang::En,
        subjects: &["Your parcel {id} is on its way", "Delivered: parcel {id}"],
        label: Some(RECEIPTS),
    },
    Service {
        name: "ShopRight",
        addr: "orders@shopright.example",
        style: Style::Notification,
        lang: Lang::En,
        subjects: &["Your order #{id} has shipped", "Receipt for order #{id}"],
        label: Some(RECEIPTS),
    },
    Service {
        name: "SkyWays Airlines",
        addr: "noreply@skyways.example",
        style: Style::Notification,
        lang: Lang::En,
        subjects: &[
            "Booking confirmation SW{id}",
            "Check in now for your flight to Lisbon",
        ],
        label: Some(TRAVEL),
    },
    Service {
        name: "GitForge",
        addr: "notifications@gitforge.example",
        style: Style::Notification,
        lang: Lang::En,
        subjects: &[
            "[northwind/api] Pull request #{id}: fix pagination",
            "[northwind/api] CI failed on main",
        ],
        label: Some(PROJECTS),
    },
    Service {
        name: "Stadtwerke München",
        addr: "rechnung@stadtwerke.example",
        style: Style::Notification,
        lang: Lang::De,
        subjects: &["Ihre Rechnung Nr. {id}", "Zählerstand bestätigt"],
        label: Some(FINANCE),
    },
    Service {
        name: "FriendFeed",
        addr: "notify@friendfeed.example",
        style: Style::Social,
        lang: Lang::En,
        subjects: &[
            "Someone tagged you in a photo",
            "You have {n} new friend requests",
        ],
        label: None,
    },
    Service {
        name: "LinkUp",
        addr: "messages@linkup.example",
        style: Style::Social,
        lang: Lang::En,
        subjects: &[
            "You appeared in {n} searches this week",
            "New message waiting for you",
        ],
        label: None,
    },
    Service {
        name: "rust-users",
        addr: "rust-users@lists.example.org",
        style: Style::Forum,
        lang: Lang::En,
        subjects: &[
            "[rust-users] Borrow checker and async closures",
            "[rust-users] Best way to parse mbox files?",
            "[rust-users] Release 1.{n} announcement",
        ],
        label: None,
    },
    Service {
        name: "Wanderfreunde",
        addr: "wandern@groups.example.com",
        style: Style::Forum,
        lang: Lang::De,
        subjects: &[
            "[Wanderfreunde] Tour am {w}",
            "[Wanderfreunde] Fotos vom Ausflug",
        ],
        label: None,
    },
];

const PERSONAL_SUBJECTS: &[&str] = &[
    "Dinner on {w}?",
    "Photos from the weekend",
    "Quick question",
    "Trip to Kyoto",
    "Birthday party",
    "Café next week?",
    "Überraschungsparty für Oma",
    "来週の予定について",
    "Réunion de famille",
    "Grüße aus München",
    "Recipe you asked for",
    "Moving day: need hands",
    "¿Quedamos el {w}?",
    "Book club: next pick",
];

const WORK_SUBJECTS: &[&str] = &[
    "Q3 planning",
    "Project Phoenix status update",
    "Budget review",
    "Offsite agenda",
    "Code review: pagination rewrite",
    "Draft contract v{n}",
    "Interview feedback",
    "Präsentation für Montag",
    "見積書の件",
    "Incident report #{id}",
];

const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Friday", "Saturday", "Sunday"];

#[rustfmt::skip]
const WORDS_EN: &[&str] = &[
    "the", "and", "we", "you", "I", "to", "of", "a", "in", "that", "it's", "for", "on", "with",
    "this", "week", "meeting", "project", "just", "wanted", "to", "follow", "up", "about",
    "schedule", "don't", "think", "we'll", "need", "more", "time", "let", "me", "know", "if",
    "works", "for", "you.", "thanks", "again,", "plan", "draft", "review", "notes", "update",
    "tomorrow", "afternoon", "probably", "around", "budget", "numbers", "look", "good.",
    "\"final\"", "version", "attached", "shared", "folder", "call", "later", "today.",
    "coffee", "weekend", "trip", "photos", "family", "kids", "garden", "train", "ticket",
    "hotel", "booking", "great", "idea", "sounds", "perfect.", "maybe", "next", "Friday",
    "could", "should", "would", "really", "quick", "question:", "invoice", "order", "delivery",
    "customers", "team", "release", "deadline", "tests", "passing", "server", "backup",
];

#[rustfmt::skip]
const WORDS_DE: &[&str] = &[
    "und", "die", "der", "das", "ich", "wir", "Sie", "ist", "nicht", "für", "mit", "über",
    "Grüße", "Besprechung", "nächste", "Woche", "schön", "Straße", "Mädchen", "Kaffee",
    "Brötchen", "Projekt", "Termin", "bitte", "danke", "später", "heute", "Müll", "Käse",
    "Frühstück", "Bahnhof", "Zug", "Fahrrad", "morgen", "können", "würde", "gern", "Ausflug",
];

#[rustfmt::skip]
const WORDS_FR: &[&str] = &[
    "le", "la", "les", "et", "je", "nous", "vous", "être", "très", "déjà", "été", "réunion",
    "café", "élève", "fête", "à", "où", "demain", "semaine", "prochaine", "merci", "bientôt",
    "projet", "vacances", "gâteau", "château", "hôtel", "frère", "sœur", "noël", "garçon",
];

#[rustfmt::skip]
const WORDS_ES: &[&str] = &[
    "el", "la", "los", "y", "que", "nosotros", "mañana", "año", "niño", "reunión", "café",
    "también", "después", "próxima", "semana", "gracias", "fotos", "viaje", "cumpleaños",
    "España", "corazón", "canción", "jamón", "señora", "pequeño", "está", "aquí",
];

#[rustfmt::skip]
const WORDS_JA: &[&str] = &[
    "会議", "資料", "確認", "来週", "よろしく", "お願い", "します", "予定", "について", "東京", "金曜日", "どうも", "写真", "旅行",
    "京都", "今日", "明日", "時間", "場所", "連絡", "です", "ます", "、", "。",
];

/// ASCII words by exact byte length, to finish a line at an exact width.
const FILL: [&[&str]; 17] = [
    &[""],
    &["a", "I"],
    &["ok", "so", "we"],
    &["yes", "now", "all"],
    &["soon", "done", "more"],
    &["great", "later", "today"],
    &["thanks", "friday", "coffee"],
    &["meeting", "tonight", "project"],
    &["tomorrow", "schedule", "weekends"],
    &["wonderful", "afternoon", "according"],
    &["definitely", "everything", "interested"],
    &["opportunity", "information", "development"],
    &["appreciation", "presentation", "requirements"],
    &["unfortunately", "documentation", "international"],
    &["communications", "recommendation", "infrastructure"],
    &["congratulations", "representatives", "troubleshooting"],
    &["responsibilities", "misunderstanding", "incomprehensible"],
];

fn words(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::En => WORDS_EN,
        Lang::De => WORDS_DE,
        Lang::Fr => WORDS_FR,
        Lang::Es => WORDS_ES,
        Lang::Ja => WORDS_JA,
    }
}

// ---------------------------------------------------------------------------
// Text layout: lines of known width, so the text's length is known without
// producing its words.

enum Seg {
    Line(usize),
    Blank,
}

/// Splits `budget` bytes (CRLFs included) into lines and paragraph breaks.
/// Every line costs width + 2; budget must be at least 3.
fn layout(rng: &mut Mix, budget: usize, mut f: impl FnMut(Seg) -> bool) {
    let mut b = budget;
    loop {
        for _ in 0..1 + rng.below(5) {
            if b <= 80 {
                f(Seg::Line(b - 2));
                return;
            }
            let w = 48 + rng.below(27);
            b -= w + 2;
            if !f(Seg::Line(w)) {
                return;
            }
        }
        if b > 80 {
            b -= 2;
            if !f(Seg::Blank) {
                return;
            }
        }
    }
}

/// Writes exactly `width` bytes of words. Pool words are at most 12 bytes,
/// so the loop leaves 4..=16 bytes, closed by a FILL word of that length.
fn fill_line(out: &mut Vec<u8>, rng: &mut Mix, pool: &[&str], width: usize) {
    let mut r = width;
    let mut first = true;
    while r > 16 {
        let w = rng.pick(pool);
        if !first {
            out.push(b' ');
            r -= 1;
        }
        out.extend_from_slice(w.as_bytes());
        r -= w.len();
        first = false;
    }
    if !first {
        out.push(b' ');
        r -= 1;
    }
    out.extend_from_slice(rng.pick(FILL[r]).as_bytes());
}

/// Writes `len` bytes of CRLF-terminated lines of words (`len` >= 3).
fn write_lines(out: &mut Vec<u8>, seed: u64, pool: &[&str], len: usize, stop_at: usize) {
    let mut lay = Mix::new(seed, 1);
    let mut wr = Mix::new(seed, 2);
    layout(&mut lay, len, |seg| {
        if let Seg::Line(w) = seg {
            fill_line(out, &mut wr, pool, w);
        }
        out.extend_from_slice(b"\r\n");
        out.len() < stop_at
    });
}

fn count_lines(seed: u64, len: usize) -> usize {
    let mut lay = Mix::new(seed, 1);
    let mut n = 0;
    layout(&mut lay, len, |_| {
        n += 1;
        true
    });
    n
}

// ---------------------------------------------------------------------------
// Output sinks: the same rendering code either writes bytes or counts them.

trait ByteSink {
    fn put(&mut self, b: &[u8]);
    /// `len` raw bytes produced by `fill`, base64-encoded in 76-column lines
    /// when `b64`. No trailing CRLF: the next boundary delimiter brings one.
    fn content(&mut self, b64: bool, len: usize, fill: &dyn Fn(&mut Vec<u8>));
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }

    fn content(&mut self, b64: bool, len: usize, fill: &dyn Fn(&mut Vec<u8>)) {
        if !b64 {
            fill(self);
            return;
        }
        let mut raw = Vec::with_capacity(len);
        fill(&mut raw);
        self.reserve(b64_len(raw.len()));
        let mut buf = [0u8; 76];
        for (i, chunk) in raw.chunks(57).enumerate() {
            if i > 0 {
                self.extend_from_slice(b"\r\n");
            }
            let n = STANDARD
                .encode_slice(chunk, &mut buf)
                .expect("76 bytes hold 57 encoded");
            self.extend_from_slice(&buf[..n]);
        }
    }
}

struct Count(usize);

impl ByteSink for Count {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }

    fn content(&mut self, b64: bool, len: usize, _: &dyn Fn(&mut Vec<u8>)) {
        self.0 += if b64 { b64_len(len) } else { len };
    }
}

/// Length of `n` bytes base64-encoded in CRLF-separated 76-column lines.
fn b64_len(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let lines = n.div_ceil(57);
    n.div_ceil(3) * 4 + 2 * (lines - 1)
}

// ---------------------------------------------------------------------------
// Header encoding

/// RFC 2047 encoded words for `s`, folded with CRLF SP between words.
/// Q for mostly-Latin text, B for mostly non-Latin.
fn encoded_words(s: &str) -> String {
    let non_ascii = s.chars().filter(|c| !c.is_ascii()).count();
    let q = non_ascii * 3 < s.chars().count();
    let mut out = String::new();
    let mut chunk = String::new();
    let mut cost = 0;
    let flush = |out: &mut String, chunk: &mut String| {
        if chunk.is_empty() {
            return;
        }
        if !out.is_empty() {
            out.push_str("\r\n ");
        }
        if q {
            out.push_str("=?UTF-8?Q?");
            for &b in chunk.as_bytes() {
                match b {
                    b' ' => out.push('_'),
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                        out.push(b as char)
                    }
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.push('=');
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 15)]));
                    }
                }
            }
        } else {
            out.push_str("=?UTF-8?B?");
            out.push_str(&STANDARD.encode(chunk.as_bytes()));
        }
        out.push_str("?=");
        chunk.clear();
    };
    for c in s.chars() {
        let n = c.len_utf8();
        let c_cost = if q {
            if c.is_ascii_alphanumeric() || c == ' ' {
                1
            } else {
                3 * n
            }
        } else {
            n
        };
        // Q: at most 45 encoded chars; B: at most 36 bytes (48 chars).
        if cost + c_cost > if q { 45 } else { 36 } {
            flush(&mut out, &mut chunk);
            cost = 0;
        }
        chunk.push(c);
        cost += c_cost;
    }
    flush(&mut out, &mut chunk);
    out
}

/// An unstructured header value (Subject): as is when ASCII, else encoded.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        encoded_words(s)
    }
}

/// A display name for an address header.
fn phrase(name: &str) -> String {
    if !name.is_ascii() {
        encoded_words(name)
    } else if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&b))
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Appends `Name: item, item, ...`, folding between items near 76 columns.
fn folded_list(out: &mut String, name: &str, items: &[String], sep: &str) {
    out.push_str(name);
    out.push(':');
    let mut col = name.len() + 1;
    for (i, item) in items.iter().enumerate() {
        let first_line = item.split("\r\n").next().unwrap_or("");
        if i > 0 {
            out.push_str(sep);
            col += sep.len();
        }
        if i > 0 && col + 1 + first_line.len() > 76 {
            out.push_str("\r\n");
            col = 0;
        }
        out.push(' ');
        out.push_str(item);
        col += 1 + item.rsplit("\r\n").next().unwrap_or("").len();
    }
    out.push_str("\r\n");
}

fn rfc5322_date(ms: i64, tz_min: i16) -> String {
    let off = FixedOffset::east_opt(i32::from(tz_min) * 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&off)
        .format("%a, %-d %b %Y %H:%M:%S %z")
        .to_string()
}

fn message_id(token: u64) -> String {
    let mut m = Mix::new(token, 3);
    match token % 4 {
        0 | 1 => {
            let mut raw = [0u8; 30];
            for c in raw.chunks_mut(8) {
                let v = m.next().to_le_bytes();
                c.copy_from_slice(&v[..c.len()]);
            }
            format!(
                "<CA{}@mail.gmail.com>",
                STANDARD.encode(raw).replace('/', "_")
            )
        }
        2 => format!(
            "<{:016x}.{:08x}@smtp.relay.example>",
            m.next(),
            m.next() as u32
        ),
        _ => format!(
            "<{:x}.{}@eu-west-1.mailer.example>",
            m.next(),
            token % 100_000
        ),
    }
}

/// `n` random bytes as base64, folded like a signature header value.
fn sig(m: &mut Mix, n: usize) -> String {
    let mut out = String::with_capacity(n * 3 / 2);
    // 51 bytes (a multiple of 3) encode to 68 chars with no padding.
    for (i, chunk) in m.bytes(n).chunks(51).enumerate() {
        if i > 0 {
            out.push_str("\r\n         ");
        }
        STANDARD.encode_string(chunk, &mut out);
    }
    out
}

fn boundary(seed: u64, level: u64) -> String {
    format!("0000000000{:018x}", Mix::new(seed, 10 + level).next() >> 8)
}

/// Display name from an address: "alex.doe@x" -> "Alex Doe".
fn user_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-', '+'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// "Name <addr>" or the bare address.
pub(crate) fn mailbox_str(name: &str, addr: &str) -> String {
    if name.is_empty() {
        addr.to_string()
    } else {
        format!("{name} <{addr}>")
    }
}

// ---------------------------------------------------------------------------
// Rendering

/// The fixed text around a body's words, and whether it all is ASCII
/// (sent as 7bit; otherwise base64).
struct Frame {
    hello: String,
    bye: String,
    ascii: bool,
}

const HTML_HEAD: &str = "<div dir=\"ltr\">";
const HTML_TAIL: &str = "</div>\r\n";
const NEWS_HEAD: &str = "\
    <!DOCTYPE html>\r\n\
    <html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\">\r\n\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\r\n\
    <style>body{margin:0;padding:0;background:#f4f4f4}table{border-collapse:collapse}\r\n\
    .card{padding:16px;background:#ffffff;font-family:Helvetica,Arial,sans-serif;font-size:15px;color:#333333}\r\n\
    .btn{display:inline-block;padding:10px 18px;background:#0b6e4f;color:#ffffff;border-radius:4px}</style>\r\n\
    </head><body><table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\"><tr><td class=\"card\">\r\n";
const NEWS_BLOCK: &str = "\
    <table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\"><tr><td class=\"card\">\r\n\
    <img src=\"https://img.cdn.example/p/item.jpg\" width=\"560\" height=\"320\" alt=\"Featured item\" style=\"display:block;border:0\">\r\n\
    <h2 style=\"margin:12px 0 4px 0;font-size:20px\">Featured this week</h2>\r\n\
    <p style=\"margin:0 0 12px 0;line-height:1.5\">Hand-picked for you by our editors. Limited quantities available while stocks last.</p>\r\n\
    <a class=\"btn\" href=\"https://click.mailer.example/track?u=8f2a91&amp;c=item\">Shop now</a>\r\n\
    </td></tr></table>\r\n";
const NEWS_TAIL: &str = "\
    </td></tr></table>\r\n\
    <img src=\"https://click.mailer.example/open.gif\" width=\"1\" height=\"1\" alt=\"\">\r\n\
    </body></html>\r\n";

impl Recipe {
    fn who(&self, p: Party) -> Cow<'static, Person> {
        match p {
            Party::User => {
                let name = user_name(&self.user);
                Cow::Owned(Person {
                    first: name.split(' ').next().unwrap_or("").to_string(),
                    name,
                    addr: self.user.to_string(),
                    lang: Lang::En,
                    tz_min: 0,
                })
            }
            Party::Contact(i) => Cow::Borrowed(contact(i)),
            Party::Service(i) => {
                let s = &SERVICES[usize::from(i)];
                Cow::Owned(Person {
                    name: s.name.to_string(),
                    first: s.name.to_string(),
                    addr: s.addr.to_string(),
                    lang: s.lang,
                    tz_min: 0,
                })
            }
        }
    }

    fn subject(&self) -> String {
        if self.reply {
            format!("Re: {}", self.subject)
        } else {
            self.subject.to_string()
        }
    }

    /// The fixed opening and closing around the body's words.
    fn frame(&self) -> Frame {
        let (hello, bye) = self.frame_text();
        let ascii = self.lang == Lang::En && hello.is_ascii() && bye.is_ascii();
        Frame { hello, bye, ascii }
    }

    fn frame_text(&self) -> (String, String) {
        let me = self.who(self.from);
        let them = self.to.first().map(|&p| self.who(p));
        let them_first = them.map(|p| p.first.clone()).unwrap_or_default();
        match self.style {
            Style::Chat => (String::new(), String::new()),
            Style::Newsletter | Style::Notification | Style::Social => {
                let user_first = self.who(Party::User).first.clone();
                let hello = match self.lang {
                    Lang::De => format!("Hallo {user_first},\r\n\r\n"),
                    Lang::Fr => format!("Bonjour {user_first},\r\n\r\n"),
                    Lang::Ja => format!("{user_first}様\r\n\r\n"),
                    _ => format!("Hello {user_first},\r\n\r\n"),
                };
                let domain = me.addr.split('@').nth(1).unwrap_or("");
                let bye = format!(
                    "\r\n--\r\nYou are receiving this email because you signed up at {}.\r\nUnsubscribe: https://{domain}/unsubscribe\r\n",
                    me.name
                );
                (hello, bye)
            }
            Style::Forum => (
                "Hi all,\r\n\r\n".to_string(),
                format!("\r\nCheers,\r\n{}\r\n", me.first),
            ),
            Style::Personal | Style::Work => match self.lang {
                Lang::De => (
                    format!("Hallo {them_first},\r\n\r\n"),
                    format!("\r\nViele Grüße\r\n{}\r\n", me.first),
                ),
                Lang::Fr => (
                    format!("Bonjour {them_first},\r\n\r\n"),
                    format!("\r\nCordialement,\r\n{}\r\n", me.first),
                ),
                Lang::Es => (
                    format!("Hola {them_first}:\r\n\r\n"),
                    format!("\r\nUn abrazo,\r\n{}\r\n", me.first),
                ),
                Lang::Ja => (
                    format!("{them_first}さん\r\n\r\n"),
                    format!("\r\nよろしくお願いします。\r\n{}\r\n", me.first),
                ),
                Lang::En => (
                    format!("Hi {them_first},\r\n\r\n"),
                    format!("\r\nBest,\r\n{}\r\n", me.first),
                ),
            },
        }
    }

    /// Bytes of words between the frame's opening and closing.
    fn word_budget(&self, f: &Frame) -> usize {
        self.text_len as usize - f.hello.len() - f.bye.len()
    }

    /// Writes the text body; stops early once `stop_at` bytes are out.
    fn write_text(&self, f: &Frame, out: &mut Vec<u8>, stop_at: usize) {
        out.extend_from_slice(f.hello.as_bytes());
        write_lines(
            out,
            self.seed,
            words(self.lang),
            self.word_budget(f),
            stop_at,
        );
        if out.len() < stop_at {
            out.extend_from_slice(f.bye.as_bytes());
        }
    }

    fn html_parts(&self) -> (&'static str, &'static str) {
        if self.html_blocks > 0 || self.style == Style::Newsletter {
            (NEWS_HEAD, NEWS_TAIL)
        } else {
            (HTML_HEAD, HTML_TAIL)
        }
    }

    /// The HTML copy: the text with `<br>` before each CRLF, in a frame.
    fn write_html(&self, f: &Frame, out: &mut Vec<u8>) {
        let (head, tail) = self.html_parts();
        out.extend_from_slice(head.as_bytes());
        let mut text = Vec::with_capacity(self.text_len as usize);
        self.write_text(f, &mut text, usize::MAX);
        for line in text.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(&line[..line.len() - 2]);
            out.extend_from_slice(b"<br>\r\n");
        }
        for _ in 0..self.html_blocks {
            out.extend_from_slice(NEWS_BLOCK.as_bytes());
        }
        out.extend_from_slice(tail.as_bytes());
    }

    fn html_len(&self, f: &Frame) -> usize {
        let (head, tail) = self.html_parts();
        let crlfs = f.hello.matches("\r\n").count()
            + count_lines(self.seed, self.word_budget(f))
            + f.bye.matches("\r\n").count();
        head.len()
            + self.text_len as usize
            + 4 * crlfs
            + usize::from(self.html_blocks) * NEWS_BLOCK.len()
            + tail.len()
    }

    fn attachment_bytes(&self, i: usize) -> Vec<u8> {
        let a = &self.attachments[i];
        let size = a.size as usize;
        let seed = self.seed ^ (i as u64 + 1).wrapping_mul(0x51_7CC1_B727_220A);
        let mut rng = Mix::new(seed, 4);
        let mut out = Vec::with_capacity(size);
        let (head, tail) = match a.kind {
            FileKind::Txt => {
                write_lines(&mut out, seed, WORDS_EN, size, usize::MAX);
                return out;
            }
            FileKind::Ics => return self.ics().into_bytes(),
            kind => kind.magic(),
        };
        out.extend_from_slice(head);
        rng.fill(&mut out, size - head.len() - tail.len());
        out.extend_from_slice(tail);
        out
    }

    fn ics(&self) -> String {
        let me = self.who(self.from);
        let start = chrono::DateTime::from_timestamp_millis(self.date_ms + 7 * DAY_MS)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ");
        let stamp = chrono::DateTime::from_timestamp_millis(self.date_ms)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ");
        format!(
            "BEGIN:VCALENDAR\r\n\
             PRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n\
             VERSION:2.0\r\n\
             CALSCALE:GREGORIAN\r\n\
             METHOD:REQUEST\r\n\
             BEGIN:VEVENT\r\n\
             DTSTART:{start}\r\n\
             DTSTAMP:{stamp}\r\n\
             ORGANIZER;CN={}:mailto:{}\r\n\
             UID:{:016x}@google.com\r\n\
             SUMMARY:{}\r\n\
             STATUS:CONFIRMED\r\n\
             END:VEVENT\r\n\
             END:VCALENDAR\r\n",
            me.name, me.addr, self.seed, self.subject
        )
    }

    /// The delivery trace Gmail adds to received mail (Received, ARC,
    /// DKIM, ...): a large share of a real message's header bytes.
    fn trace_headers(&self, h: &mut String, sender: &str, date: &str) {
        let mut m = Mix::new(self.seed, 5);
        let domain = sender.split('@').nth(1).unwrap_or("example.com");
        let ip = format!("198.51.100.{}", m.below(250) + 1);
        let t = self.date_ms / 1000;
        let results = format!(
            "mx.google.com;\r\n       dkim=pass header.i=@{domain} header.s=s{} header.b={};\r\n       spf=pass (google.com: domain of {sender} designates {ip} as permitted sender) smtp.mailfrom={sender};\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from={domain}",
            m.below(9000) + 1000,
            STANDARD.encode(m.bytes(6))
        );
        let _ = write!(
            h,
            "Delivered-To: {user}\r\n\
             Received: by 2002:a05:6a10:{a:x}:b0:{b:x}:{c:x}:{d:x} with SMTP id {e:x}csp{f};\r\n        {date}\r\n\
             X-Received: by 2002:a17:90a:{g:x}:b0:{b:x}:{c:x}:{d:x} with SMTP id {e:x}mr{f}{a};\r\n        {date}\r\n\
             ARC-Seal: i=1; a=rsa-sha256; t={t}; cv=none;\r\n        d=google.com; s=arc-20240605;\r\n        b={seal}\r\n\
             ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=google.com; s=arc-20240605;\r\n        h=to:subject:message-id:date:from:mime-version:dkim-signature;\r\n        bh={bh};\r\n        b={ams}\r\n\
             ARC-Authentication-Results: i=1; {results}\r\n\
             Return-Path: <{sender}>\r\n\
             Received: from mail.{domain} (mail.{domain}. [{ip}])\r\n        by mx.google.com with ESMTPS id {e:x}{a:x}.{g}.2025.{f}\r\n        for <{user}>\r\n        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\r\n        {date}\r\n\
             Received-SPF: pass (google.com: domain of {sender} designates {ip} as permitted sender) client-ip={ip};\r\n\
             Authentication-Results: {results}\r\n\
             DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n        d={domain}; s=s{f}; t={t};\r\n        h=to:subject:message-id:date:from:mime-version:from:to:cc:subject\r\n         :date:message-id:reply-to;\r\n        bh={bh};\r\n        b={dkim}\r\n\
             X-Google-Smtp-Source: {src}\r\n",
            user = self.user,
            a = m.below(0xffff),
            b = m.below(0xfff),
            c = m.below(0xffff),
            d = m.below(0xffff),
            e = m.below(0xffff),
            f = m.below(9_999_999),
            g = m.below(0xffff),
            seal = sig(&mut m, 256),
            bh = STANDARD.encode(m.bytes(32)),
            ams = sig(&mut m, 256),
            dkim = sig(&mut m, 256),
            src = STANDARD.encode(m.bytes(66)),
        );
    }

    fn headers(&self) -> String {
        let mut h = String::with_capacity(4096);
        let date = rfc5322_date(self.date_ms, self.tz_min);
        let from = self.who(self.from);
        if self.from != Party::User {
            self.trace_headers(&mut h, &from.addr, &date);
        }
        h.push_str("MIME-Version: 1.0\r\n");
        let _ = write!(h, "Date: {date}\r\n");
        let _ = write!(h, "Message-ID: {}\r\n", message_id(self.seed));
        if let Some(&parent) = self.refs.last() {
            let _ = write!(h, "In-Reply-To: {}\r\n", message_id(parent));
            let ids: Vec<String> = self.refs.iter().map(|&r| message_id(r)).collect();
            folded_list(&mut h, "References", &ids, "");
        }
        h.push_str("Subject: ");
        h.push_str(&header_text(&self.subject()));
        h.push_str("\r\n");
        let _ = write!(h, "From: {} <{}>\r\n", phrase(&from.name), from.addr);
        for (name, list) in [("To", &self.to), ("Cc", &self.cc)] {
            if list.is_empty() {
                continue;
            }
            let items: Vec<String> = list
                .iter()
                .map(|&p| {
                    let w = self.who(p);
                    format!("{} <{}>", phrase(&w.name), w.addr)
                })
                .collect();
            folded_list(&mut h, name, &items, ",");
        }
        // Mail from a service or a list carries list headers.
        let list = match (self.from, self.to.first()) {
            (Party::Service(i), _) => Some(&SERVICES[usize::from(i)]),
            (_, Some(&Party::Service(i))) => Some(&SERVICES[usize::from(i)]),
            _ => None,
        };
        if let Some(s) = list {
            let domain = s.addr.split('@').nth(1).unwrap_or("");
            if s.style == Style::Forum {
                let _ = write!(h, "List-Id: <{}>\r\n", s.addr.replacen('@', ".", 1));
            }
            let _ = write!(
                h,
                "List-Unsubscribe: <mailto:unsubscribe@{domain}?subject=unsubscribe-{:x}>,\r\n <https://{domain}/u/{:016x}>\r\n",
                self.seed >> 40,
                self.seed
            );
            if s.style == Style::Newsletter {
                h.push_str("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
            }
        }
        h
    }

    fn text_headers(f: &Frame, subtype: &str) -> String {
        if f.ascii {
            format!("Content-Type: text/{subtype}; charset=\"UTF-8\"\r\n")
        } else {
            format!("Content-Type: text/{subtype}; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: base64\r\n")
        }
    }

    fn put_text<S: ByteSink>(&self, s: &mut S, f: &Frame) {
        s.content(!f.ascii, self.text_len as usize, &|o| {
            self.write_text(f, o, usize::MAX)
        });
    }

    fn put_alternative<S: ByteSink>(&self, s: &mut S, f: &Frame, b: &str) {
        s.put(format!("--{b}\r\n{}\r\n", Self::text_headers(f, "plain")).as_bytes());
        self.put_text(s, f);
        s.put(format!("\r\n--{b}\r\n{}\r\n", Self::text_headers(f, "html")).as_bytes());
        s.content(!f.ascii, self.html_len(f), &|o| self.write_html(f, o));
        s.put(format!("\r\n--{b}--\r\n").as_bytes());
    }

    fn emit<S: ByteSink>(&self, s: &mut S, headers_only: bool) {
        let f = &self.frame();
        let mut h = self.headers();
        let outer = boundary(self.seed, 0);
        let inner = boundary(self.seed, 1);
        if !self.attachments.is_empty() {
            let _ = write!(h, "Content-Type: multipart/mixed; boundary=\"{outer}\"\r\n");
        } else if self.html {
            let _ = write!(
                h,
                "Content-Type: multipart/alternative; boundary=\"{outer}\"\r\n"
            );
        } else {
            h.push_str(&Self::text_headers(f, "plain"));
        }
        h.push_str("\r\n");
        s.put(h.as_bytes());
        if headers_only {
            return;
        }
        if self.attachments.is_empty() {
            if self.html {
                self.put_alternative(s, f, &outer);
            } else {
                self.put_text(s, f);
                if !f.ascii {
                    s.put(b"\r\n");
                }
            }
            return;
        }
        s.put(format!("--{outer}\r\n").as_bytes());
        if self.html {
            s.put(
                format!("Content-Type: multipart/alternative; boundary=\"{inner}\"\r\n\r\n")
                    .as_bytes(),
            );
            self.put_alternative(s, f, &inner);
        } else {
            s.put(format!("{}\r\n", Self::text_headers(f, "plain")).as_bytes());
            self.put_text(s, f);
        }
        for (i, a) in self.attachments.iter().enumerate() {
            let name = if a.name.is_ascii() {
                a.name.to_string()
            } else {
                encoded_words(&a.name).replace("\r\n ", "")
            };
            let id = format!("f_{:x}", Mix::new(self.seed, 20 + i as u64).next() >> 24);
            s.put(
                format!(
                    "\r\n--{outer}\r\nContent-Type: {}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <{id}>\r\nX-Attachment-Id: {id}\r\n\r\n",
                    a.kind.content_type()
                )
                .as_bytes(),
            );
            s.content(true, a.size as usize, &|o| {
                o.extend_from_slice(&self.attachment_bytes(i))
            });
        }
        s.put(format!("\r\n--{outer}--\r\n").as_bytes());
    }

    /// The whole RFC 5322 message, CRLF line endings.
    pub fn render(&self) -> Vec<u8> {
        let mut n = Count(0);
        self.emit(&mut n, false);
        let mut out = Vec::with_capacity(n.0);
        self.emit(&mut out, false);
        out
    }

    /// The header section, ending with the empty line; `render()` starts
    /// with exactly these bytes.
    pub fn render_headers(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.emit(&mut out, true);
        out
    }

    /// Moves the message to another date (Date header and trace headers).
    /// The rendered length may change: recompute it with `size()`.
    pub fn set_date(&mut self, date_ms: i64) {
        self.date_ms = date_ms - date_ms.rem_euclid(1000);
    }

    /// Length of `render()`, computed without producing bodies.
    pub fn size(&self) -> usize {
        let mut n = Count(0);
        self.emit(&mut n, false);
        n.0
    }

    /// The decoded text/plain body, as a MIME parser extracts it.
    pub fn body_text(&self) -> String {
        let mut out = Vec::with_capacity(self.text_len as usize);
        self.write_text(&self.frame(), &mut out, usize::MAX);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Decoded content of attachment part `part_id` ("1", "2", ...: parts
    /// after the body in multipart/mixed), without rendering the message.
    pub fn attachment_content(&self, part_id: &str) -> Option<Vec<u8>> {
        let i: usize = part_id.parse().ok()?;
        if i == 0 || i > self.attachments.len() || part_id.starts_with('0') {
            return None;
        }
        Some(self.attachment_bytes(i - 1))
    }

    fn snippet(&self) -> String {
        let mut out = Vec::with_capacity(1024);
        // Enough bytes for 200 characters, CJK included.
        let stop = if self.lang == Lang::Ja { 640 } else { 320 };
        self.write_text(&self.frame(), &mut out, stop);
        snippet(&String::from_utf8_lossy(&out))
    }
}

// ---------------------------------------------------------------------------
// Mailbox generation

/// The labels every mailbox has: system labels, then user labels.
pub fn standard_labels(user: &[&str]) -> Vec<Label> {
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
pub fn message_id_for(internal_date_ms: i64, counter: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_123; // 2026-01-01, plus a bit

    fn recipe(m: &SimMessage) -> &Recipe {
        match &m.body {
            Body::Generated(r) => r,
            Body::Stored(_) => panic!("generated messages have recipes"),
        }
    }

    #[test]
    fn deterministic_and_independent_of_time_of_day() {
        let a = generate(7, 500, "alex.doe@example.com", NOW);
        let b = generate(7, 500, "alex.doe@example.com", NOW + 3_600_000);
        assert_eq!(a.messages.len(), 500);
        for (x, y) in a.messages.values().zip(b.messages.values()) {
            assert_eq!(x.id, y.id);
            assert_eq!(x.label_ids, y.label_ids);
            assert_eq!(x.snippet, y.snippet);
            assert_eq!(x.raw(), y.raw());
        }
        let c = generate(8, 500, "alex.doe@example.com", NOW);
        assert_ne!(
            a.messages.keys().collect::<Vec<_>>(),
            c.messages.keys().collect::<Vec<_>>()
        );
    }

    /// Pins the output for one seed, so a change to the generator or an
    /// upgrade of `rand`/`rand_chacha` cannot alter mailboxes silently:
    /// the first messages' ids and subjects, and a SHA-256 over every
    /// message's id, thread, labels, date, size, snippet and rendered bytes.
    #[test]
    fn seed_1_output_is_pinned() {
        use sha2::{Digest, Sha256};
        let mb = generate(1, 20, "me@example.com", NOW);
        let first: Vec<(&str, &str)> = mb
            .messages
            .values()
            .take(3)
            .map(|m| (m.id.as_str(), m.subject.as_str()))
            .collect();
        let mut h = Sha256::new();
        for m in mb.messages.values() {
            for part in [&m.id, &m.thread_id, &m.label_ids.join(","), &m.snippet] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            h.update(m.internal_date_ms.to_le_bytes());
            h.update((m.size as u64).to_le_bytes());
            h.update(m.raw());
        }
        let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            first,
            [
                ("185c507c19000002", "【11%オフ】週末限定セール"),
                ("1862496538800012", "来週の予定について"),
                ("1863190c66800013", "Re: 来週の予定について"),
            ],
            "first messages"
        );
        assert_eq!(
            digest, "c76db3923cabd81a0ee72f993e26e9cc445a558511af7411d870685e7a3a32a0",
            "whole mailbox"
        );
    }

    #[test]
    fn size_matches_render_and_headers_prefix() {
        let mb = generate(11, 3_000, "me@example.com", NOW);
        for m in mb.messages.values() {
            let r = recipe(m);
            let raw = r.render();
            assert_eq!(raw.len(), m.size, "message {}", m.id);
            assert!(raw.starts_with(&r.render_headers()));
            assert!(
                raw.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'),
                "bare LF"
            );
        }
    }

    #[test]
    fn set_date_moves_the_date_header() {
        let mut mb = generate(12, 20, "me@example.com", NOW);
        let m = mb.messages.values_mut().next().expect("a message");
        let Body::Generated(r) = &mut m.body else {
            panic!("generated")
        };
        let r = Arc::get_mut(r).expect("unshared");
        r.set_date(NOW + 1_234);
        let raw = r.render();
        assert_eq!(raw.len(), r.size());
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("parses");
        assert_eq!(
            parsed.date().expect("date").to_timestamp() * 1000,
            NOW - 123 + 1_000
        );
    }

    #[test]
    fn body_text_matches_mime_parser() {
        let mb = generate(3, 800, "me@example.com", NOW);
        for m in mb.messages.values() {
            let r = recipe(m);
            let raw = r.render();
            let parsed = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("parses");
            assert_eq!(
                parsed.body_text(0).as_deref(),
                Some(r.body_text().as_str()),
                "message {}",
                m.id
            );
            assert_eq!(parsed.subject(), Some(m.subject.as_str()));
            assert_eq!(parsed.attachment_count(), m.attachment_names.len());
            for (i, name) in m.attachment_names.iter().enumerate() {
                let part = parsed.attachment(i as u32).expect("attachment");
                use mail_parser::MimeHeaders;
                assert_eq!(part.attachment_name(), Some(name.as_str()));
                assert_eq!(
                    part.contents(),
                    &r.attachment_content(&(i + 1).to_string()).expect("content")[..]
                );
            }
            let date = parsed.date().expect("date").to_timestamp();
            assert_eq!(date * 1000, m.internal_date_ms);
        }
    }

    #[test]
    fn ids_threads_and_labels() {
        let mb = generate(5, 5_000, "me@example.com", NOW);
        let mut threads = std::collections::HashMap::<&str, Vec<&SimMessage>>::new();
        for m in mb.messages.values() {
            assert_eq!(m.id.len(), 16);
            assert!(m
                .id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(m.internal_date_ms <= NOW && m.internal_date_ms > NOW - SPAN_MS - DAY_MS);
            threads.entry(&m.thread_id).or_default().push(m);
            let mut sorted = m.label_ids.clone();
            sorted.sort();
            assert_eq!(sorted, m.label_ids);
            for l in &m.label_ids {
                assert!(mb.labels.iter().any(|x| &x.id == l), "unknown label {l}");
            }
            if m.has_label("SPAM") || m.has_label("TRASH") || m.has_label("SENT") {
                assert!(!m.has_label("INBOX"));
            }
            assert!(m.history_id <= mb.history_id);
        }
        // Thread id is the id of the thread's first (oldest) message.
        for (tid, msgs) in &threads {
            assert_eq!(*tid, msgs[0].id);
            for m in &msgs[1..] {
                assert!(m.subject.starts_with("Re: "));
                let raw = m.raw();
                let text = String::from_utf8_lossy(&raw);
                assert!(text.contains("\r\nIn-Reply-To: <") && text.contains("\r\nReferences: <"));
            }
        }
        let long = threads.values().map(|t| t.len()).max().unwrap_or(0);
        assert!(long >= 11, "longest thread {long}");
        let n = mb.messages.len() as f64;
        let share = |f: &dyn Fn(&SimMessage) -> bool| {
            mb.messages.values().filter(|m| f(m)).count() as f64 / n
        };
        let unread = share(&|m| m.has_label("UNREAD"));
        assert!((0.2..0.4).contains(&unread), "unread {unread}");
        let starred = share(&|m| m.has_label("STARRED"));
        assert!((0.03..0.07).contains(&starred), "starred {starred}");
        let user = share(&|m| m.label_ids.iter().any(|l| l.starts_with("Label_")));
        assert!((0.12..0.3).contains(&user), "user labels {user}");
        let spam = share(&|m| m.has_label("SPAM"));
        assert!((0.002..0.02).contains(&spam), "spam {spam}");
        let sent = share(&|m| m.has_label("SENT"));
        assert!(sent > 0.05, "sent {sent}");
        let newsletters = share(&|m| m.has_label("CATEGORY_PROMOTIONS"));
        assert!(newsletters > 0.1);
        let inbox_cat = mb
            .messages
            .values()
            .filter(|m| m.has_label("INBOX"))
            .all(|m| m.label_ids.iter().any(|l| l.starts_with("CATEGORY_")));
        assert!(inbox_cat);
        assert_eq!(mb.history_floor, mb.history_id);
        assert!(mb.history.is_empty());
    }

    #[test]
    fn size_distribution() {
        let mb = generate(9, 20_000, "me@example.com", NOW);
        let n = mb.messages.len() as f64;
        let count = |lo: usize, hi: usize| {
            mb.messages
                .values()
                .filter(|m| (lo..hi).contains(&m.size))
                .count() as f64
                / n
        };
        let normal = count(1_000, 30_000);
        let large = count(50_000, 1_100_000);
        let huge = count(2_000_000, 8_500_000);
        assert!(normal > 0.8, "normal {normal}");
        assert!((0.03..0.07).contains(&large), "large {large}");
        assert!((0.0008..0.004).contains(&huge), "huge {huge}");
        assert!(mb
            .messages
            .values()
            .all(|m| m.size < 8_500_000 && m.size > 300));
    }

    #[test]
    fn non_ascii_headers_are_encoded_and_decode_back() {
        let mb = generate(21, 3_000, "me@example.com", NOW);
        let mut seen_b = false;
        let mut seen_q = false;
        for m in mb.messages.values() {
            let head = recipe(m).render_headers();
            assert!(head.is_ascii(), "headers must be 7-bit");
            let text = String::from_utf8_lossy(&head);
            seen_b |= text.contains("=?UTF-8?B?");
            seen_q |= text.contains("=?UTF-8?Q?");
            assert!(text.lines().all(|l| l.len() <= 998));
            let parsed = mail_parser::MessageParser::default()
                .parse(&head[..])
                .expect("headers");
            let from = parsed.from().and_then(|a| a.first()).expect("from");
            assert_eq!(
                mailbox_str(from.name().unwrap_or(""), from.address().unwrap_or("")),
                m.from
            );
            assert_eq!(parsed.subject(), Some(m.subject.as_str()));
        }
        assert!(seen_b && seen_q);
        assert!(mb
            .messages
            .values()
            .any(|m| m.from.contains("山田") || m.from.contains("佐藤")));
        assert!(mb.messages.values().any(|m| !m.subject.is_ascii()));
    }

    #[test]
    fn encoded_words_roundtrip() {
        for s in [
            "José Müller",
            "山田太郎",
            "Überraschungsparty für Oma und die ganze Familie, ja",
            "来週の予定について、確認をお願いいたします。よろしくお願いします",
        ] {
            let enc = encoded_words(s);
            for w in enc.split("\r\n ") {
                assert!(w.len() <= 75, "{w}");
            }
            let raw = format!("Subject: {enc}\r\n\r\n");
            let parsed = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .expect("parses");
            assert_eq!(parsed.subject(), Some(s));
        }
    }

    #[test]
    fn b64_len_matches_encoder() {
        for n in [0usize, 1, 2, 3, 56, 57, 58, 114, 1000, 4321] {
            let mut out = Vec::new();
            ByteSink::content(&mut out, true, n, &|o| o.resize(n, 7));
            assert_eq!(out.len(), b64_len(n), "n={n}");
        }
    }

    #[test]
    fn word_pools_fit_line_filler() {
        for lang in [Lang::En, Lang::De, Lang::Fr, Lang::Es, Lang::Ja] {
            assert!(words(lang).iter().all(|w| !w.is_empty() && w.len() <= 12));
        }
        for (n, ws) in FILL.iter().enumerate() {
            assert!(ws.iter().all(|w| w.len() == n && w.is_ascii()));
        }
        let mut rng = Mix::new(1, 1);
        for width in 1..200 {
            let mut out = Vec::new();
            fill_line(&mut out, &mut rng, WORDS_JA, width);
            assert_eq!(out.len(), width);
        }
    }

    #[test]
    fn memory_per_message_is_small() {
        assert!(
            std::mem::size_of::<Recipe>() <= 160,
            "{}",
            std::mem::size_of::<Recipe>()
        );
    }

    /// Timing and memory: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_generate_100k() {
        let start = std::time::Instant::now();
        let mb = generate(1, 100_000, "me@example.com", NOW);
        let took = start.elapsed();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let mem: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
            .collect();
        let total: usize = mb.messages.values().map(|m| m.size).sum();
        println!(
            "generate 100k: {took:?}; {mem:?}; total size {} MB",
            total / 1_000_000
        );
        let n = mb.messages.len() as f64;
        let share = |f: &dyn Fn(&SimMessage) -> bool| {
            100.0 * mb.messages.values().filter(|m| f(m)).count() as f64 / n
        };
        for l in SYSTEM_LABELS.iter().chain(&["Label_"]) {
            print!(
                "{l} {:.1}%  ",
                share(&|m| m.label_ids.iter().any(|x| x.starts_with(l)))
            );
        }
        println!();
        let mut threads = std::collections::HashMap::<&str, usize>::new();
        for m in mb.messages.values() {
            *threads.entry(&m.thread_id).or_default() += 1;
        }
        let t = threads.len() as f64;
        let tshare = |lo: usize, hi: usize| {
            100.0
                * threads
                    .values()
                    .filter(|&&c| (lo..=hi).contains(&c))
                    .count() as f64
                / t
        };
        println!(
            "threads {}: len 1 {:.1}%, 2-10 {:.1}%, 11-30 {:.1}%",
            threads.len(),
            tshare(1, 1),
            tshare(2, 10),
            tshare(11, 30)
        );
        println!(
            "sizes: <2K {:.1}%, 2-30K {:.1}%, 30-50K {:.1}%, 50K-1M {:.1}%, 1-2M {:.2}%, 2-8M {:.2}%",
            share(&|m| m.size < 2_000),
            share(&|m| (2_000..30_000).contains(&m.size)),
            share(&|m| (30_000..50_000).contains(&m.size)),
            share(&|m| (50_000..1_000_000).contains(&m.size)),
            share(&|m| (1_000_000..2_000_000).contains(&m.size)),
            share(&|m| m.size >= 2_000_000)
        );
        println!(
            "attachments {:.1}%, non-ASCII from {:.1}%, non-ASCII subject {:.1}%",
            share(&|m| !m.attachment_names.is_empty()),
            share(&|m| !m.from.is_ascii()),
            share(&|m| !m.subject.is_ascii())
        );
    }
}
