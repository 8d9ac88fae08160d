//! Device profiles: what a device speaks, declared in TOML, no code. A profile names
//! the devices it matches, their services and characteristics in human words, the
//! command frames the device takes (a byte template with typed parameters, the answer
//! to wait for, the fields to parse out of it, the frame's length and CRC rules), the
//! messages it sends unasked, and a guide for the assistant.
//!
//! Built-in profiles (the simulated devices' protocols) are embedded in the binary;
//! `mcp.profiles_dir` adds more, and one there replaces a built-in of the same name.
//! The MCP server offers them as resources and runs their commands (`device_command`);
//! `gattway profile check FILE` validates one.

pub mod frame;
mod markdown;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::frame::{Field, FieldType, FrameRules, Param, Pattern};
use crate::ble::sim::spec::DeviceSpec;
use crate::ble::Uuid;

/// Why a profile cannot be loaded or a command not built.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a profile: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("profile {profile:?}: {problem}")]
    Check { profile: String, problem: String },
    /// A profile's own text is wrong (a bad template or pattern).
    #[error("{0}")]
    Invalid(String),
    /// A caller's parameters do not fit the command.
    #[error("{0}")]
    Param(String),
    #[error("{0}")]
    Frame(String),
}

/// Named values read out of a frame: `{name: {value, unit}}`.
pub type Fields = Map<String, Value>;

/// A frame recognised as one of a profile's messages, with its fields (or why
/// they could not be read).
pub type Recognised<'a> = (&'a Message, Result<Fields, String>);

/// One device profile, as its TOML file says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Lower-case letters, digits and dashes: the resource's name.
    pub name: String,
    pub title: String,
    /// Free text for the assistant: how to use the device, what to watch for.
    #[serde(default)]
    pub guide: String,
    #[serde(default, rename = "match")]
    pub matches: MatchRule,
    #[serde(default)]
    pub services: Vec<ServiceDoc>,
    /// Where commands are written and answers arrive.
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub frame: FrameRules,
    #[serde(default)]
    pub commands: Vec<Command>,
    /// Answers that mean the command failed (an error frame).
    #[serde(default)]
    pub errors: Vec<Message>,
    /// What the device sends unasked (a tag report, an event).
    #[serde(default)]
    pub messages: Vec<Message>,
}

/// A device matches when any one of these fits it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    #[serde(default)]
    pub name_prefixes: Vec<String>,
    /// Advertised (or GATT) services, service-data UUIDs included.
    #[serde(default)]
    pub services: Vec<Uuid>,
    #[serde(default)]
    pub manufacturer_ids: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDoc {
    pub uuid: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub characteristics: Vec<CharacteristicDoc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharacteristicDoc {
    pub uuid: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub service: Uuid,
    /// Commands are written here.
    pub write: Uuid,
    /// Answers arrive as notifications of this characteristic.
    #[serde(default)]
    pub notify: Option<Uuid>,
    /// Write with response (default: without, as command pipes usually are).
    #[serde(default)]
    pub with_response: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub name: String,
    pub description: String,
    /// Hex bytes with `{param}` placeholders.
    pub request: String,
    #[serde(default)]
    pub params: Vec<Param>,
    /// The notification that answers it (`??` for any byte); none: the write is all.
    #[serde(default)]
    pub answer: Option<Pattern>,
    /// What to read out of the answer.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// How long to wait for the answer (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A frame the device sends, known by its pattern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub pattern: Pattern,
    #[serde(default)]
    pub fields: Vec<Field>,
}

/// What a device shows of itself, for matching.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceTraits<'a> {
    pub name: Option<&'a str>,
    pub services: &'a [Uuid],
    pub manufacturer_ids: &'a [u16],
}

impl Profile {
    /// Reads and checks one profile file.
    pub fn from_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ProfileError::Parse { message, .. } => ProfileError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a profile's text.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        profile.check()?;
        Ok(profile)
    }

    /// Everything a profile must get right before it is used (its answer and message
    /// patterns were parsed as it was read): its name, that each template builds,
    /// each placeholder is a parameter and each parameter is used, and commands have
    /// a channel to go through.
    pub fn check(&self) -> Result<(), ProfileError> {
        let problem = |problem: String| ProfileError::Check {
            profile: self.name.clone(),
            problem,
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(problem(
                "name must be lower-case letters, digits and dashes".into(),
            ));
        }
        if self.matches == MatchRule::default() {
            return Err(problem(
                "[match] names no name prefix, service or manufacturer id: it would match nothing".into(),
            ));
        }
        if !self.commands.is_empty() && self.channel.is_none() {
            return Err(problem(
                "it has commands but no [channel] to send them through".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.commands {
            if !names.insert(c.name.as_str()) {
                return Err(problem(format!("two commands are named {:?}", c.name)));
            }
            let in_template = |p: &Param| c.request.contains(&format!("{{{}}}", p.name));
            if let Some(unused) = c.params.iter().find(|p| !in_template(p)) {
                return Err(problem(format!(
                    "command {}: parameter {} is not in its request",
                    c.name, unused.name
                )));
            }
            // Every parameter at its default, or its smallest value: the template must build.
            let sample: Map<String, Value> = c
                .params
                .iter()
                .map(|p| {
                    let v = match p.kind {
                        FieldType::Utf8 => Value::from("a"),
                        FieldType::Hex => Value::from("00"),
                        _ => Value::from(p.min.unwrap_or(0)),
                    };
                    (p.name.clone(), v)
                })
                .collect();
            frame::build_request(&c.request, &c.params, &sample)
                .map_err(|e| problem(format!("command {}: {e}", c.name)))?;
            if c.answer.is_some() {
                if self.channel.as_ref().is_some_and(|ch| ch.notify.is_none()) {
                    return Err(problem(format!(
                        "command {} waits for an answer but [channel] has no notify characteristic",
                        c.name
                    )));
                }
            } else if !c.fields.is_empty() {
                return Err(problem(format!(
                    "command {} has fields but no answer to read them from",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// Whether this profile is for a device like this.
    pub fn matches(&self, device: DeviceTraits<'_>) -> bool {
        let m = &self.matches;
        device
            .name
            .is_some_and(|n| m.name_prefixes.iter().any(|p| n.starts_with(p.as_str())))
            || device.services.iter().any(|s| m.services.contains(s))
            || device
                .manufacturer_ids
                .iter()
                .any(|id| m.manufacturer_ids.contains(id))
    }

    pub fn command(&self, name: &str) -> Option<&Command> {
        self.commands.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The request bytes of a command with these parameters, frame rules applied.
    pub fn request(&self, command: &Command, params: &Map<String, Value>) -> Result<Vec<u8>, ProfileError> {
        let mut bytes = frame::build_request(&command.request, &command.params, params)?;
        self.frame.finish_request(&mut bytes)?;
        Ok(bytes)
    }

    /// The error frame this is, if it is one, with its fields.
    pub fn error_in(&self, frame: &[u8]) -> Option<Recognised<'_>> {
        first_fit(&self.errors, frame)
    }

    /// What a frame from the device is: the first of its error frames or messages
    /// whose pattern fits, with its fields.
    pub fn recognise(&self, frame: &[u8]) -> Option<Recognised<'_>> {
        first_fit(&self.errors, frame).or_else(|| first_fit(&self.messages, frame))
    }

    /// What `gattway profile check` prints: the profile, what it matches (the rule,
    /// and which of `devices` fit it), and its commands.
    pub fn summary(&self, devices: &[DeviceSpec]) -> String {
        let mut out = format!("ok: profile {} ({})\n", self.name, self.title);
        let m = &self.matches;
        out.push_str(&format!(
            "matches: name prefixes {:?}, services [{}], manufacturer ids [{}]\n",
            m.name_prefixes,
            m.services
                .iter()
                .map(|u| u.short())
                .collect::<Vec<_>>()
                .join(", "),
            m.manufacturer_ids
                .iter()
                .map(|id| format!("0x{id:04x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let fits: Vec<String> = devices
            .iter()
            .filter(|d| {
                let (services, manufacturer_ids) = spec_traits(d);
                self.matches(DeviceTraits {
                    name: Some(&d.name),
                    services: &services,
                    manufacturer_ids: &manufacturer_ids,
                })
            })
            .map(|d| format!("{} ({})", d.name, d.address))
            .collect();
        out.push_str(&format!(
            "simulated devices it matches: {}\n",
            if fits.is_empty() {
                "none".to_string()
            } else {
                fits.join(", ")
            }
        ));
        out.push_str(&format!("commands: {}\n", self.commands.len()));
        for c in &self.commands {
            let params: Vec<String> = c
                .params
                .iter()
                .map(|p| format!("{}: {:?}", p.name, p.kind).to_lowercase())
                .collect();
            out.push_str(&format!(
                "  {}({}) — {}\n",
                c.name,
                params.join(", "),
                c.description
            ));
        }
        out
    }

    /// The profile as markdown, for an assistant to read.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }
}

/// The services (advertised, GATT, service data) and manufacturer ids a
/// simulated device shows.
fn spec_traits(d: &DeviceSpec) -> (Vec<Uuid>, Vec<u16>) {
    let mut services: Vec<Uuid> = d.advertised_services.clone();
    services.extend(d.services.iter().map(|s| s.uuid));
    let payloads = d.adverts.iter().map(|a| (&a.service_data, &a.manufacturer_data));
    let mut manufacturer_ids: Vec<u16> = d.manufacturer_data.iter().map(|m| m.company_id).collect();
    services.extend(d.service_data.iter().map(|s| s.uuid));
    for (service_data, manufacturer_data) in payloads {
        services.extend(service_data.iter().map(|s| s.uuid));
        manufacturer_ids.extend(manufacturer_data.iter().map(|m| m.company_id));
    }
    (services, manufacturer_ids)
}

fn first_fit<'a>(messages: &'a [Message], frame: &[u8]) -> Option<Recognised<'a>> {
    messages
        .iter()
        .find(|m| m.pattern.matches(frame))
        .map(|m| (m, frame::read_fields(&m.fields, frame)))
}

/// The profiles a gateway knows: built-in ones and those of `mcp.profiles_dir`.
#[derive(Clone, Debug, Default)]
pub struct ProfileSet {
    profiles: Vec<Arc<Profile>>,
}

/// The embedded profiles: one per simulated device's protocol.
const BUILTIN: &[(&str, &str)] = &[
    ("cs108.toml", include_str!("builtin/cs108.toml")),
    ("heart-rate.toml", include_str!("builtin/heart-rate.toml")),
    ("nordic-uart.toml", include_str!("builtin/nordic-uart.toml")),
    (
        "environmental-sensing.toml",
        include_str!("builtin/environmental-sensing.toml"),
    ),
    ("battery.toml", include_str!("builtin/battery.toml")),
    ("bthome.toml", include_str!("builtin/bthome.toml")),
];

impl ProfileSet {
    /// The built-in profiles.
    pub fn builtin() -> Self {
        let profiles = BUILTIN
            .iter()
            .map(|(file, text)| match Profile::from_toml(text) {
                Ok(p) => Arc::new(p),
                // The built-ins are checked by this module's tests; a bad one is a
                // build that must not ship.
                Err(e) => panic!("built-in profile {file}: {e}"),
            })
            .collect();
        ProfileSet { profiles }
    }

    /// The built-ins plus every `*.toml` in `dir`; one there replaces a built-in of
    /// the same name. A bad file is an error naming it.
    pub fn load(dir: Option<&Path>) -> Result<Self, ProfileError> {
        let mut set = Self::builtin();
        let Some(dir) = dir else { return Ok(set) };
        let entries = std::fs::read_dir(dir).map_err(|source| ProfileError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let profile = Profile::from_file(&path)?;
            set.profiles.retain(|p| p.name != profile.name);
            set.profiles.push(Arc::new(profile));
        }
        Ok(set)
    }

    pub fn all(&self) -> &[Arc<Profile>] {
        &self.profiles
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Profile>> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profiles for a device like this.
    pub fn matching(&self, device: DeviceTraits<'_>) -> Vec<&Arc<Profile>> {
        self.profiles.iter().filter(|p| p.matches(device)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_loads_and_checks() {
        let set = ProfileSet::builtin();
        assert_eq!(set.all().len(), BUILTIN.len());
        for p in set.all() {
            assert!(!p.guide.is_empty(), "{} has no guide", p.name);
            assert!(p.to_markdown().starts_with(&format!("# {}", p.title)));
        }
    }

    #[test]
    fn the_cs108_profile_matches_the_reader_and_builds_its_battery_command() {
        let set = ProfileSet::builtin();
        let reader = DeviceTraits {
            name: Some("CS108Reader000001"),
            ..Default::default()
        };
        let names: Vec<&str> = set.matching(reader).iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cs108"]);
        let cs108 = set.get("cs108").unwrap();
        let battery = cs108.command("battery_voltage").unwrap();
        let bytes = cs108.request(battery, &Map::new()).unwrap();
        assert_eq!(hex::encode(bytes), "a7b302d982370000a000");
    }

    #[test]
    fn a_bad_profile_says_what_is_wrong() {
        let cases = [
            ("name = \"X\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]", "lower-case"),
            ("name = \"x\"\ntitle = \"t\"", "match nothing"),
            ("name = \"x\"\ntitle = \"t\"\nsurprise = 1", "unknown field"),
            (
                "name = \"x\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]\n[[commands]]\nname = \"c\"\ndescription = \"d\"\nrequest = \"01\"",
                "no [channel]",
            ),
            (
                "name = \"x\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]\n[channel]\nservice = \"ffe0\"\nwrite = \"ffe1\"\n[[commands]]\nname = \"c\"\ndescription = \"d\"\nrequest = \"01 {p}\"",
                "no parameter",
            ),
            (
                "name = \"x\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]\n[channel]\nservice = \"ffe0\"\nwrite = \"ffe1\"\n[[commands]]\nname = \"c\"\ndescription = \"d\"\nrequest = \"01\"\nanswer = \"02\"",
                "no notify",
            ),
            (
                "name = \"x\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]\n[channel]\nservice = \"ffe0\"\nwrite = \"ffe1\"\n[[commands]]\nname = \"c\"\ndescription = \"d\"\nrequest = \"0g\"",
                "not a hex byte",
            ),
            (
                "name = \"x\"\ntitle = \"t\"\n[match]\nname_prefixes = [\"x\"]\n[[messages]]\nname = \"m\"\npattern = \"A7 ?g\"",
                "not a hex byte",
            ),
        ];
        for (text, says) in cases {
            let e = Profile::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}\n→ {e}");
        }
    }
}
