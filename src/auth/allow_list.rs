//! [`DeviceAllowList`]: which devices a credential may see and use. One type with
//! one meaning on every front end (MCP, bridge, control, REST, hub), applied to
//! results as well as to arguments.
//!
//! An entry admits a device when it equals the device's id or its name; an entry
//! that ends in `*` admits every device whose id or name starts with the rest
//! (`"sensor-*"`, `"CS108*"`); `"*"` alone admits every device. An empty list
//! admits every device (no restriction).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Exact(String),
    Prefix(String),
}

impl Entry {
    fn parse(text: &str) -> Entry {
        let text = text.trim();
        match text.strip_suffix('*') {
            Some(prefix) => Entry::Prefix(prefix.to_string()),
            None => Entry::Exact(text.to_string()),
        }
    }

    fn admits(&self, id: &str, name: Option<&str>) -> bool {
        match self {
            Entry::Exact(e) => e == id || name == Some(e.as_str()),
            Entry::Prefix(p) => id.starts_with(p.as_str()) || name.is_some_and(|n| n.starts_with(p.as_str())),
        }
    }
}

/// The devices a credential may use; see the module doc for the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceAllowList {
    /// `None`: every device.
    entries: Option<Vec<Entry>>,
}

impl DeviceAllowList {
    /// A list that admits every device.
    pub fn any() -> Self {
        DeviceAllowList::default()
    }

    /// The list a credential's `devices` give; empty (or a `"*"` among them) admits
    /// every device.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let entries: Vec<Entry> = entries
            .iter()
            .map(|e| e.as_ref())
            .filter(|e| !e.trim().is_empty())
            .map(Entry::parse)
            .collect();
        let unrestricted = entries.is_empty() || entries.contains(&Entry::Prefix(String::new()));
        DeviceAllowList {
            entries: (!unrestricted).then_some(entries),
        }
    }

    /// Whether every device is admitted.
    pub fn is_any(&self) -> bool {
        self.entries.is_none()
    }

    /// Whether the device with this id (and name, when it has one) is admitted.
    pub fn admits(&self, id: &str, name: Option<&str>) -> bool {
        match &self.entries {
            None => true,
            Some(list) => list.iter().any(|e| e.admits(id, name)),
        }
    }

    /// The one device the list names, when it is a single exact entry (a device
    /// credential's identity).
    pub fn single(&self) -> Option<&str> {
        match self.entries.as_deref() {
            Some([Entry::Exact(id)]) => Some(id),
            _ => None,
        }
    }

    /// The exact entries, when the list has no prefix: the devices "every device
    /// I may see" stands for where devices have no names (the hub). `None` when the
    /// list admits any device or has a prefix.
    pub fn exact_entries(&self) -> Option<Vec<String>> {
        let list = self.entries.as_ref()?;
        list.iter()
            .map(|e| match e {
                Entry::Exact(id) => Some(id.clone()),
                Entry::Prefix(_) => None,
            })
            .collect()
    }
}

impl fmt::Display for DeviceAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entries {
            None => f.write_str("*"),
            Some(list) => {
                let text: Vec<String> = list
                    .iter()
                    .map(|e| match e {
                        Entry::Exact(id) => id.clone(),
                        Entry::Prefix(p) => format!("{p}*"),
                    })
                    .collect();
                f.write_str(&text.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_an_id_a_name_or_a_prefix_of_either() {
        let list = DeviceAllowList::new(&["C0:FF:EE:00:00:01", "Gattway HRM", "sensor-*", "CS108*"]);
        assert!(list.admits("C0:FF:EE:00:00:01", None), "exact id");
        assert!(list.admits("AA:BB", Some("Gattway HRM")), "exact name");
        assert!(
            !list.admits("AA:BB", Some("Gattway HRM 2")),
            "a name is not a prefix without *"
        );
        assert!(list.admits("sensor-7", None), "id prefix");
        assert!(list.admits("AA:BB", Some("CS108 Reader")), "name prefix");
        assert!(!list.admits("boiler", None));
        assert!(!list.admits("C0:FF:EE:00:00:0", None), "an id is exact");
        assert!(!list.is_any());
        assert_eq!(list.single(), None);
        assert_eq!(list.exact_entries(), None, "a prefix cannot be listed");
    }

    #[test]
    fn empty_or_star_admits_everything() {
        for list in [
            DeviceAllowList::new::<&str>(&[]),
            DeviceAllowList::new(&["*"]),
            DeviceAllowList::any(),
        ] {
            assert!(list.is_any());
            assert!(list.admits("anything", Some("at all")));
            assert_eq!(list.exact_entries(), None);
        }
    }

    #[test]
    fn a_single_exact_entry_names_one_device() {
        let one = DeviceAllowList::new(&["boiler"]);
        assert_eq!(one.single(), Some("boiler"));
        assert_eq!(one.exact_entries(), Some(vec!["boiler".to_string()]));
        assert_eq!(DeviceAllowList::new(&["boiler*"]).single(), None);
        assert_eq!(DeviceAllowList::new(&["a", "b"]).single(), None);
        assert_eq!(DeviceAllowList::new(&["a", "b*"]).to_string(), "a, b*");
    }
}
