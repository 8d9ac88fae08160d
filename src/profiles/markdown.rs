//! A profile as markdown: what an assistant reads from `gattway://profiles/{name}`.

use std::fmt::Write;

use super::{Field, Profile};

/// Writing to a `String` cannot fail; `let _ =` says so once per line.
pub fn render(p: &Profile) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", p.title);
    let _ = writeln!(out, "Profile `{}`.\n", p.name);
    if !p.guide.is_empty() {
        let _ = writeln!(out, "{}\n", p.guide.trim());
    }
    let m = &p.matches;
    let mut fits = Vec::new();
    if !m.name_prefixes.is_empty() {
        fits.push(format!("names starting with {}", quoted(&m.name_prefixes)));
    }
    if !m.services.is_empty() {
        let s: Vec<String> = m.services.iter().map(|u| u.short()).collect();
        fits.push(format!("service {}", s.join(" or ")));
    }
    if !m.manufacturer_ids.is_empty() {
        let s: Vec<String> = m
            .manufacturer_ids
            .iter()
            .map(|id| format!("0x{id:04x}"))
            .collect();
        fits.push(format!("manufacturer id {}", s.join(" or ")));
    }
    let _ = writeln!(out, "Matches devices with {}.\n", fits.join(", or "));
    if !p.services.is_empty() {
        let _ = writeln!(out, "## Services\n");
        for s in &p.services {
            let _ = writeln!(
                out,
                "- `{}` **{}**{}",
                s.uuid.short(),
                s.name,
                dash(&s.description)
            );
            for c in &s.characteristics {
                let _ = writeln!(out, "  - `{}` {}{}", c.uuid.short(), c.name, dash(&c.description));
            }
        }
        let _ = writeln!(out);
    }
    if let Some(ch) = &p.channel {
        let _ = writeln!(out, "## Commands\n");
        let _ = write!(
            out,
            "Call them with the `device_command` tool (`device`, `command`, `params`). They are written to \
             `{}` in service `{}`",
            ch.write.short(),
            ch.service.short()
        );
        match ch.notify {
            Some(n) => {
                let _ = writeln!(out, "; answers arrive as notifications of `{}`.\n", n.short());
            }
            None => {
                let _ = writeln!(out, ".\n");
            }
        }
        for c in &p.commands {
            let _ = writeln!(out, "### `{}`\n\n{}\n", c.name, c.description);
            let _ = writeln!(out, "- request: `{}`", c.request);
            for param in &c.params {
                let mut range = String::new();
                if param.min.is_some() || param.max.is_some() {
                    range = format!(
                        ", {}..={}",
                        param.min.map(|v| v.to_string()).unwrap_or_default(),
                        param.max.map(|v| v.to_string()).unwrap_or_default()
                    );
                }
                let default = param
                    .default
                    .as_ref()
                    .map(|d| format!(", default {d}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "- param `{}` ({:?}{range}{default}{}){}",
                    param.name,
                    param.kind,
                    param
                        .unit
                        .as_deref()
                        .map(|u| format!(", {u}"))
                        .unwrap_or_default(),
                    dash(&param.description)
                );
            }
            if let Some(answer) = &c.answer {
                let _ = writeln!(out, "- answer: `{answer}`");
            }
            fields(&mut out, &c.fields);
            let _ = writeln!(out);
        }
    }
    for (title, list) in [
        ("Error answers", &p.errors),
        ("Messages it sends unasked", &p.messages),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {title}\n");
        for m in list {
            let _ = writeln!(out, "- **{}** `{}`{}", m.name, m.pattern, dash(&m.description));
            fields(&mut out, &m.fields);
        }
        let _ = writeln!(out);
    }
    if p.frame.length.is_some() || p.frame.crc.is_some() {
        let _ = writeln!(out, "## Frames\n");
        if let Some(l) = &p.frame.length {
            let _ = writeln!(
                out,
                "- byte {} holds the frame's length minus {}",
                l.at, l.counts_from
            );
        }
        if let Some(c) = &p.frame.crc {
            let _ = writeln!(
                out,
                "- bytes {}..{} hold a CRC-16/CCITT-FALSE (big-endian) of bytes {}.. to the end{}",
                c.at,
                c.at + 2,
                c.from,
                if c.in_requests { "" } else { " (answers only)" }
            );
        }
    }
    out
}

fn fields(out: &mut String, fields: &[Field]) {
    for f in fields {
        let _ = writeln!(
            out,
            "- field `{}`: {:?} at byte {}{}{}{}",
            f.name,
            f.kind,
            f.at,
            f.scale.map(|s| format!(" × {s}")).unwrap_or_default(),
            f.unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default(),
            dash(&f.description)
        );
    }
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

fn quoted(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    q.join(" or ")
}
