#!/usr/bin/env python3
"""Turns Kong's published plugin schemas (JSON Schema, one file per plugin)
into rgmerge's plugin-schema data format (`src/config/kong/schemas.rs`).

Input: the JSON files for Kong Gateway 3.10 under
`app/_schemas/gateway/plugins/3.10/` in Kong/developer.konghq.com (MIT
licence) — for a plugin with no 3.10 file, the newest earlier one (EARLIER;
`published_version` says which), read from a git checkout or mirror of that repository:

    scripts/convert_plugin_schemas.py --repo /path/to/developer.konghq.com[.git] \
        [--commit HEAD] > src/config/kong/plugin_schemas_enterprise.json

Output: `src/config/kong/plugin_schemas_enterprise.json`, one description per
plugin Kong Gateway 3.10 bundles (`BUNDLED` in src/config/kong/plugins.rs)
that the hand-read OSS data (`plugin_schemas.json`) does not describe, with
its provenance (repository, path, commit, licence) in the header. The fetched
files themselves are not kept in rgmerge's repository.

What the published schemas say, and so what the output checks: field names
(a field none of them names is refused, as Kong refuses it), types, `enum`
(Kong's `one_of`), `minimum`/`maximum` (`between`), `minLength`/`maxLength`,
`required`, defaults, vault references; "" is refused but by passwords and
fields whose default is "" (`Converter.empty_ok`). Fields and enum values of later
versions (LATER) are taken and marked `since`; deprecated names the earlier
files list (EARLIER) are `shorthand_fields`. What they are silent on is left to
Kong and listed (`unchecked` per plugin, `silent` for the whole file):
patterns, formats, entity checks, custom validators, `gt`, and the empty
string's exact rule (Kong refuses "" unless a field says `len_min = 0`, which
the published schemas do not show: `Converter.empty_ok` follows where Kong's
OSS schemas say it).

`--compare` converts the OSS plugins' published files as well and counts
where they and the hand-read `plugin_schemas.json` differ (types, required
fields, ranges, enums, which strings take ""): a measure of the conversion.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = "Kong/developer.konghq.com"
LICENCE = "MIT"
VERSION = "3.10"
DIR = f"app/_schemas/gateway/plugins/{VERSION}"
ROOT = Path(__file__).resolve().parent.parent

# Later versions whose fields (and enum values) are taken too: a Konnect
# control plane takes a field of a newer Kong and leaves it out of the config
# it sends an older data plane, so refusing it would refuse configs that
# Konnect loads (decK dumps of Konnect carry them). Marked `since`.
LATER = ["3.11", "3.12", "3.13", "3.14", "3.15"]
# Earlier versions whose published schemas still list `shorthand_fields`
# (deprecated names Kong takes and moves to the new field; the 3.10 files
# leave them out, and decK dumps carry them). Newest first.
EARLIER = ["3.9", "3.8", "3.7", "3.4"]


def git(repo, *args):
    bare = (repo / "HEAD").exists() and not (repo / ".git").exists()
    where = ["--git-dir", str(repo)] if bare else ["-C", str(repo)]
    return subprocess.run(
        ["git", *where, *args], check=True, capture_output=True, text=True
    ).stdout


def bundled():
    """(name, enterprise) of every row of plugins.rs's BUNDLED table."""
    src = (ROOT / "src/config/kong/plugins.rs").read_text()
    return re.findall(r'(?:p|no_consumer)\("([a-z0-9-]+)", (OSS|EE)', src)


def file_name(plugin):
    """Kong's file name for a plugin: CamelCase (acl is ACL)."""
    if plugin == "acl":
        return "ACL.json"
    return "".join(part.capitalize() for part in plugin.split("-")) + ".json"


class Converter:
    def __init__(self):
        self.unchecked = []

    def empty_ok(self, node, path):
        """Whether a string takes "". Kong refuses "" unless the field says
        `len_min = 0`, which the published schemas do not show. Where Kong's
        OSS schemas say it, the field is a password or has the default ""
        (`--compare` counts where this rule and those schemas differ): the
        same rule is applied here, so "" is refused everywhere else, as
        Kong refuses it."""
        name = path.rsplit(".", 1)[-1].replace("[]", "")
        return node.get("default") == "" or "password" in name

    def note(self, path, why):
        self.unchecked.append(f"{path}: {why}")

    def field(self, node, path, required=False):
        out = {}
        if node.get("x-foreign"):
            # `{id = …}` of another entity; Kong also takes the bare id.
            self.note(path, "a reference to another entity (not followed)")
            return {"type": "any"}
        ty = node.get("type")
        if "oneOf" in node or ty is None:
            self.note(path, "one of several shapes (not described as data)")
            return {"type": "any"}
        if ty == "object":
            props = node.get("properties")
            extra = node.get("additionalProperties")
            if props is not None:
                out["type"] = "record"
                req = set(node.get("required", []))
                out["fields"] = {
                    k: self.field(v, f"{path}.{k}" if path else k, k in req)
                    for k, v in sorted(props.items())
                }
            elif isinstance(extra, dict):
                out["type"] = "map"
                out["values"] = self.field(extra, f"{path}.*")
            else:
                self.note(path, "an object of any keys (a map or record the schema leaves open)")
                return {"type": "any"}
        elif ty == "array":
            out["type"] = "array"
            if "items" in node:
                out["elements"] = self.field(node["items"], f"{path}[]")
        elif ty in ("string", "integer", "number", "boolean"):
            out["type"] = ty
        else:
            self.note(path, f"type {ty!r} (not described)")
            return {"type": "any"}
        if required:
            out["required"] = True
        if "default" in node:
            out["default"] = node["default"]
        if "enum" in node:
            out["one_of"] = node["enum"]
        lo, hi = node.get("minimum"), node.get("maximum")
        if lo is not None or hi is not None:
            out["between"] = [lo, hi]
        if ty in ("string", "array"):
            if "minLength" in node:
                out["len_min"] = node["minLength"]
            elif ty == "string" and "enum" not in node and self.empty_ok(node, path):
                out["len_min"] = 0
            if "maxLength" in node:
                out["len_max"] = node["maxLength"]
        if node.get("x-referenceable"):
            out["referenceable"] = True
        return out


def merge_later(ours, later, version):
    """Adds what a later version's converted field has and `ours` lacks:
    record fields (marked `since`) and string enum values."""
    if ours.get("type") != later.get("type"):
        return
    if ours.get("type") == "record":
        fields = ours.setdefault("fields", {})
        for k, v in later.get("fields", {}).items():
            if k in fields:
                merge_later(fields[k], v, version)
            elif k not in ours.get("shorthand_fields", {}):
                v = dict(v)
                v.pop("required", None)
                v["since"] = version
                fields[k] = v
    for sub in ("elements", "values"):
        if sub in ours and sub in later:
            merge_later(ours[sub], later[sub], version)
    if "one_of" in ours and "one_of" in later and ours.get("type") == "string":
        more = [v for v in later["one_of"] if v not in ours["one_of"]]
        if more:
            ours.setdefault("since_one_of", {})[version] = more
            ours["one_of"] = ours["one_of"] + more


def add_shorthands(ours, raw_old, conv, path=""):
    """Adds the `shorthand_fields` an earlier published schema lists at the
    same record (and below), unless the name is a field here."""
    if not isinstance(raw_old, dict):
        return
    if ours.get("type") == "record":
        fields = ours.get("fields", {})
        for k, v in (raw_old.get("shorthand_fields") or {}).items():
            if k not in fields:
                ours.setdefault("shorthand_fields", {}).setdefault(
                    k, conv.field(v, f"{path}.{k}")
                )
        for k, v in (raw_old.get("properties") or {}).items():
            if k in fields:
                add_shorthands(fields[k], v, conv, f"{path}.{k}" if path else k)
    elif ours.get("type") == "array" and "elements" in ours:
        add_shorthands(ours["elements"], raw_old.get("items"), conv, path + "[]")


def load(repo, commit, version, name):
    try:
        text = git(repo, "show", f"{commit}:app/_schemas/gateway/plugins/{version}/{file_name(name)}")
    except subprocess.CalledProcessError:
        return None
    return json.loads(text)


def root_record(doc):
    root = dict(doc["properties"]["config"])
    root.setdefault("properties", {})  # a config of no fields is a record
    return root


def compare(repo, commit, hand):
    """Converts the published files of the hand-read plugins and counts where
    the two descriptions differ; prints the count and each difference."""
    shared = hand["shared"]
    diffs = []
    counted = {"fields": 0, "strings": 0}

    def res(f):
        return shared.get(f["$ref"], f) if "$ref" in f else f

    def cmp(h, p, path):
        h = res(h)
        counted["fields"] += 1
        ht = {"set": "array"}.get(h.get("type"), h.get("type"))
        pt = p.get("type")
        if pt != "any" and ht != pt:
            diffs.append(f"{path}: type {ht} (hand) vs {pt} (converted)")
        need = h.get("required") and "default" not in h and not h.get("auto")
        if bool(need) != bool(p.get("required")):
            diffs.append(f"{path}: required {bool(need)} (hand) vs {bool(p.get('required'))}")
        if p.get("between") and p.get("between") != h.get("between"):
            diffs.append(f"{path}: between {h.get('between')} (hand) vs {p['between']}")
        if ht == "string" and "one_of" not in h:
            counted["strings"] += 1
            if (h.get("len_min", 1) == 0) != (p.get("len_min", 1) == 0):
                diffs.append(f"{path}: takes \"\" {h.get('len_min', 1) == 0} (hand) vs {p.get('len_min', 1) == 0}")
        if "one_of" in h and "one_of" in p:
            mine = set(map(str, h["one_of"] + (h.get("enterprise_one_of") or [])))
            if mine != set(map(str, p["one_of"])):
                diffs.append(f"{path}: one_of {sorted(mine)} (hand) vs {sorted(map(str, p['one_of']))}")
        for key in ("fields", "shorthand_fields"):
            for k, v in (h.get(key) or {}).items():
                theirs = (p.get("fields") or {}).get(k) or (p.get("shorthand_fields") or {}).get(k)
                if theirs and not v.get("only") == "oss":
                    cmp(v, theirs, f"{path}.{k}")
        for key in ("elements", "values"):
            if key in h and key in p:
                cmp(h[key], p[key], f"{path}[]")

    for name, plugin in sorted(hand["plugins"].items()):
        doc = load(repo, commit, VERSION, name)
        if doc is None:
            continue
        conv = Converter().field(root_record(doc), "")
        for version in EARLIER:
            old = load(repo, commit, version, name)
            if old:
                add_shorthands(conv, root_record(old), Converter())
        for k, v in plugin["config"].items():
            theirs = conv["fields"].get(k) or conv.get("shorthand_fields", {}).get(k)
            if theirs and v.get("only") != "oss":
                cmp(v, theirs, f"{name}.{k}")
    print(f"{counted['fields']} fields compared ({counted['strings']} free strings), {len(diffs)} differences:")
    for d in diffs:
        print("  " + d)


def later_for_hand(repo, commit, name, hand_config, shared):
    """What later versions add to a hand-read plugin: fields (each with the
    record path to it) and string enum values (`since_one_of`)."""
    conv = None
    for version in [VERSION] + LATER:
        doc = load(repo, commit, version, name)
        if doc is None:
            continue
        this = Converter().field(root_record(doc), "")
        if conv is None:
            conv = this
        else:
            merge_later(conv, this, version)
    fields, values = [], []
    if conv is None:
        return fields, values

    def res(f):
        return shared.get(f["$ref"], f) if "$ref" in f else f

    def walk(h, p, path):
        h = res(h)
        if h.get("type") == "record" and p.get("type") == "record":
            mine = h.get("fields") or {}
            short = h.get("shorthand_fields") or {}
            for k, v in (p.get("fields") or {}).items():
                if k in mine:
                    walk(mine[k], v, path + [k])
                elif k not in short and "since" in v:
                    fields.append({"plugin": name, "path": path, "name": k, "field": v})
        for key in ("elements", "values"):
            if key in h and key in p:
                walk(h[key], p[key], path + ["[]"])
        if h.get("type") == "string" and "one_of" in h:
            more = [v for vs in (p.get("since_one_of") or {}).values() for v in vs]
            more = [v for v in more if v not in h["one_of"] + (h.get("enterprise_one_of") or [])]
            if more:
                values.append({"plugin": name, "path": path, "values": more})

    walk({"type": "record", "fields": hand_config}, conv, [])
    return fields, values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, type=Path, help="checkout or bare mirror of " + REPO)
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--compare", action="store_true", help="measure the conversion on the OSS plugins instead")
    args = ap.parse_args()

    commit = git(args.repo, "rev-parse", args.commit).strip()
    hand_file = json.loads((ROOT / "src/config/kong/plugin_schemas.json").read_text())
    if args.compare:
        compare(args.repo, commit, hand_file)
        return
    hand = hand_file["plugins"]
    plugins = {}
    missing = []
    for name, _edition in bundled():
        if name in hand:
            continue
        # No 3.10 file (Konnect's application-registration): the newest
        # earlier one, its version said in the entry.
        found = next(
            (v for v in [VERSION] + EARLIER if load(args.repo, commit, v, name) is not None), None
        )
        if found is None:
            missing.append(name)
            continue
        doc = load(args.repo, commit, found, name)
        conv = Converter()
        config = conv.field(root_record(doc), "")
        for version in EARLIER:
            old = load(args.repo, commit, version, name)
            if old:
                add_shorthands(config, root_record(old), Converter())
        for version in LATER:
            new = load(args.repo, commit, version, name)
            if new:
                merge_later(config, Converter().field(root_record(new), ""), version)
        top = doc["properties"]
        # The config's own shorthands sit beside its fields (as in the
        # hand-read file), each saying so.
        for k, v in config.pop("shorthand_fields", {}).items():
            config["fields"].setdefault(k, {**v, "why": "a shorthand field (a deprecated name)"})
        entry = {"config": config["fields"]}
        protocols = top.get("protocols", {}).get("items", {}).get("enum")
        if protocols:
            entry["protocols"] = protocols
        if found == VERSION:
            entry["scopes"] = [s for s in ("consumer", "route", "service", "consumer_group") if s in top]
        else:
            # An older file's scopes are not taken: plugins.rs's row stands.
            entry["published_version"] = found
            conv.unchecked.append(
                f"the published schema is Kong {found}'s (there is none for {VERSION}); "
                "its scopes are not taken from it"
            )
        if conv.unchecked:
            entry["unchecked"] = conv.unchecked
        plugins[name] = entry

    out = {
        "kong_version": VERSION,
        "source": f"{REPO} (licence {LICENCE}) at commit {commit}: {DIR}/<PluginName>.json, "
        "converted by scripts/convert_plugin_schemas.py",
        "silent": [
            "patterns and formats (Kong's `match`, typedef validators)",
            "entity checks (`at_least_one_of`, `conditional`, …) and custom validators",
            "`gt` bounds",
            "the empty string where Kong says `len_min = 0` (the published schemas do not show it): \"\" is taken by passwords and fields whose default is \"\", and refused elsewhere, as Kong's OSS schemas do",
            "a shorthand (deprecated) field is taken as the earlier published schemas type it, not moved to its new name",
        ],
        "plugins": plugins,
    }
    if missing:
        out["not_published"] = missing
    # What later versions add to the hand-read plugins, for an Enterprise
    # target (a Konnect control plane takes it), as for the converted ones.
    later_fields, later_one_of = [], []
    for name in sorted(hand):
        f, v = later_for_hand(args.repo, commit, name, hand[name]["config"], hand_file["shared"])
        later_fields += f
        later_one_of += v
    # Every bundled plugin's scopes and protocols, the hand-read ones too:
    # `plugins::BUNDLED` is held to them, and the walker reads the
    # consumer-group scope from them.
    published = {}
    for name, _edition in bundled():
        doc = load(args.repo, commit, VERSION, name)
        if doc is None:
            continue
        top = doc["properties"]
        published[name] = {
            "scopes": [s for s in ("consumer", "route", "service", "consumer_group") if s in top],
            "protocols": top.get("protocols", {}).get("items", {}).get("enum", []),
        }
    out["published_scopes"] = published
    out["later_fields"] = later_fields
    out["later_one_of"] = later_one_of
    # One plugin a line: small diffs when the published schemas change.
    plugins = out.pop("plugins")
    # The later additions one a line too, after the plugins.
    tail = {k: out.pop(k) for k in ("later_fields", "later_one_of")}
    scopes = out.pop("published_scopes")
    head = json.dumps(out, indent=1, ensure_ascii=False)[:-2]
    rows = [
        f" {json.dumps(n)}: {json.dumps(p, ensure_ascii=False, separators=(',', ':'))}"
        for n, p in plugins.items()
    ]
    lists = "".join(
        f',\n {json.dumps(k)}: [\n'
        + ",\n".join("  " + json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in v)
        + "\n ]"
        for k, v in tail.items()
    )
    scope_rows = ",\n".join(f"  {json.dumps(n)}: {json.dumps(v, separators=(',', ':'))}" for n, v in scopes.items())
    lists += ',\n "published_scopes": {\n' + scope_rows + "\n }"
    sys.stdout.write(head + ',\n "plugins": {\n' + ",\n".join(rows) + "\n }" + lists + "\n}\n")


if __name__ == "__main__":
    main()
