//! The static tables generated mail is drawn from: cultures (names,
//! domains, time zones), the contacts built from them, the services that
//! send newsletters and notifications, subject templates and word lists.
//! Kept apart from the code that draws from them: they are most of its bulk.

use std::sync::OnceLock;

use super::layout::Mix;
use super::{Lang, Style};
use super::{FINANCE, PROJECTS, READING, RECEIPTS, TRAVEL};

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
pub(super) const CONTACTS: u16 = 400;

#[derive(Clone)]
pub(super) struct Person {
    pub(super) name: String,
    pub(super) first: String,
    pub(super) addr: String,
    pub(super) lang: Lang,
    pub(super) tz_min: i16,
}

/// Contact `i` (of `CONTACTS`), built once: recipes look people up on
/// every render.
pub(super) fn contact(i: u16) -> &'static Person {
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

pub(super) fn is_family(i: u16) -> bool {
    i % 17 == 3
}

pub(super) fn is_colleague(i: u16) -> bool {
    contact(i).addr.ends_with("@northwind.example")
}

pub(super) struct Service {
    pub(super) name: &'static str,
    pub(super) addr: &'static str,
    pub(super) style: Style,
    pub(super) lang: Lang,
    /// Subject templates: `{n}` is a small number, `{id}` a large one,
    /// `{w}` a weekday.
    pub(super) subjects: &'static [&'static str],
    /// User label the user files this service under, if any.
    pub(super) label: Option<&'static str>,
}

pub(super) const SERVICES: &[Service] = &[
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

pub(super) const PERSONAL_SUBJECTS: &[&str] = &[
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

pub(super) const WORK_SUBJECTS: &[&str] = &[
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

pub(super) const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Friday", "Saturday", "Sunday"];

#[rustfmt::skip]
pub(super) const WORDS_EN: &[&str] = &[
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
pub(super) const WORDS_JA: &[&str] = &[
    "会議", "資料", "確認", "来週", "よろしく", "お願い", "します", "予定", "について", "東京", "金曜日", "どうも", "写真", "旅行",
    "京都", "今日", "明日", "時間", "場所", "連絡", "です", "ます", "、", "。",
];

/// ASCII words by exact byte length, to finish a line at an exact width.
pub(super) const FILL: [&[&str]; 17] = [
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

pub(super) fn words(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::En => WORDS_EN,
        Lang::De => WORDS_DE,
        Lang::Fr => WORDS_FR,
        Lang::Es => WORDS_ES,
        Lang::Ja => WORDS_JA,
    }
}
