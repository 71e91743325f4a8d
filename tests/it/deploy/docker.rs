//! docker/Dockerfile without a Docker engine: the builder stage's
//! dependency layer is replayed in a temporary directory (the same files
//! copied, honouring .dockerignore, the same stub commands run by `sh` as
//! `RUN` does), and cargo resolves the manifest and fetches the locked
//! dependencies offline in place of the release build. The runtime stage's
//! package list is compared with what the built binary really links.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One instruction, continuation lines joined and comment lines dropped.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of each stage, in order, keyed by the stage's
/// position; `from` is the `FROM` line's arguments.
#[derive(Debug)]
struct Stage {
    from: String,
    body: Vec<Instruction>,
}

/// Docker's parser, as far as this Dockerfile uses it: `#` lines are
/// comments even inside a continuation, a trailing `\` continues the line.
fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut logical: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut continuing = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || (continuing && trimmed.is_empty()) {
            continue;
        }
        if !continuing && trimmed.is_empty() {
            continue;
        }
        let (part, more) = match line.trim_end().strip_suffix('\\') {
            Some(p) => (p, true),
            None => (line.trim_end(), false),
        };
        if continuing {
            current.push(' ');
        }
        current.push_str(part.trim());
        continuing = more;
        if !more {
            logical.push(std::mem::take(&mut current));
        }
    }
    assert!(!continuing, "Dockerfile ends inside a continued line");
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (keyword, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let ins = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        };
        if ins.keyword == "FROM" {
            stages.push(Stage {
                from: ins.args,
                body: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("an instruction before the first FROM")
                .body
                .push(ins);
        }
    }
    stages
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let stages = parse_dockerfile(&text);
    assert_eq!(
        stages.len(),
        2,
        "expected a builder and a runtime stage: {stages:#?}"
    );
    stages
}

/// .dockerignore as BuildKit reads it: one pattern per line, `#` comments,
/// `!` re-includes, `*`/`?` within one path segment, `**` across any number
/// of segments; a pattern that matches a directory excludes its contents;
/// the last matching pattern decides.
struct DockerIgnore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn load(root: &Path) -> Self {
        let text = std::fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negated, p) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let segments = p
                    .trim_matches('/')
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned)
                    .collect();
                (negated, segments)
            })
            .collect();
        Self { patterns }
    }

    /// Whether the context path (relative, `/`-separated) is left out of
    /// the build context.
    fn excludes(&self, rel: &str) -> bool {
        let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for (negated, pattern) in &self.patterns {
            let hit = (1..=segments.len()).any(|n| glob_segments(pattern, &segments[..n]));
            if hit {
                excluded = !negated;
            }
        }
        excluded
    }
}

fn glob_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => {
            (0..=path.len()).any(|skip| glob_segments(rest, &path[skip..]))
        }
        Some((p, rest)) => match path.split_first() {
            Some((s, tail)) => glob_one(p.as_bytes(), s.as_bytes()) && glob_segments(rest, tail),
            None => false,
        },
    }
}

fn glob_one(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|k| glob_one(rest, &s[k..])),
        Some((b'?', rest)) => !s.is_empty() && glob_one(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob_one(rest, &s[1..]),
    }
}

#[test]
fn dockerignore_matching_follows_buildkit() {
    let ig = DockerIgnore {
        patterns: vec![
            (false, vec!["target".into()]),
            (false, vec!["**".into(), "node_modules".into()]),
            (false, vec!["benches".into(), "res*".into()]),
            (false, vec!["docs".into()]),
            (true, vec!["docs".into(), "keep.md".into()]),
        ],
    };
    assert!(ig.excludes("target"));
    assert!(ig.excludes("target/debug/x"));
    assert!(!ig.excludes("src/target.rs"));
    assert!(ig.excludes("node_modules/a"));
    assert!(ig.excludes("tests/browser/node_modules/a/b.js"));
    assert!(ig.excludes("benches/results/x.json"));
    assert!(!ig.excludes("benches/scim.rs"));
    assert!(ig.excludes("docs/other.md"));
    assert!(!ig.excludes("docs/keep.md"));
}

/// Every file under `rel` (a file or a directory of the context) that the
/// build context contains, as context-relative paths.
fn context_files(root: &Path, rel: &str, ignore: &DockerIgnore) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![rel.trim_matches('/').to_owned()];
    while let Some(r) = stack.pop() {
        if !r.is_empty() && r != "." && ignore.excludes(&r) {
            continue;
        }
        let full = if r.is_empty() || r == "." {
            root.to_path_buf()
        } else {
            root.join(&r)
        };
        let meta = std::fs::symlink_metadata(&full)
            .unwrap_or_else(|e| panic!("COPY source {r:?} is not in the context: {e}"));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&full).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                stack.push(if r.is_empty() || r == "." {
                    name
                } else {
                    format!("{r}/{name}")
                });
            }
        } else {
            out.push(r);
        }
    }
    out.sort();
    out
}

/// `COPY src… dest` into `workdir`: a directory source copies its
/// contents, several sources or a dest ending in `/` name a directory.
fn replay_copy(args: &str, root: &Path, workdir: &Path, ignore: &DockerIgnore) {
    let words: Vec<&str> = args.split_whitespace().collect();
    let (flags, words): (Vec<&str>, Vec<&str>) = words.iter().partition(|w| w.starts_with("--"));
    for f in &flags {
        assert!(
            f.starts_with("--chown") || f.starts_with("--chmod") || *f == "--link",
            "the replay does not know COPY {f} (a builder-stage COPY must come from the context)"
        );
    }
    assert!(
        words.len() >= 2 && !args.trim_start().starts_with('['),
        "COPY {args}: only the shell form with a source and a destination is replayed"
    );
    let (dest, sources) = words.split_last().unwrap();
    let dest_is_dir = dest.ends_with('/') || sources.len() > 1;
    let dest_path = workdir.join(dest.trim_start_matches('/'));
    for src in sources {
        let src = src.trim_start_matches("./");
        let src_full = root.join(src);
        assert!(!src.contains('*'), "COPY {src}: wildcards are not replayed");
        if src_full.is_dir() {
            for f in context_files(root, src, ignore) {
                let inner = f
                    .strip_prefix(src.trim_end_matches('/'))
                    .unwrap()
                    .trim_start_matches('/');
                let to = dest_path.join(inner);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(root.join(&f), &to).unwrap();
            }
        } else {
            assert!(
                !ignore.excludes(src),
                "COPY {src}: .dockerignore leaves it out of the context, so `docker build` fails"
            );
            let to = if dest_is_dir {
                dest_path.join(Path::new(src).file_name().unwrap())
            } else {
                dest_path.clone()
            };
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&src_full, &to).unwrap();
        }
    }
}

/// `ENV a=b c=d` (or the legacy `ENV a b`).
fn parse_env(args: &str) -> Vec<(String, String)> {
    if !args.split_whitespace().next().unwrap_or("").contains('=') {
        let (k, v) = args.split_once(char::is_whitespace).unwrap();
        return vec![(k.to_owned(), v.trim().to_owned())];
    }
    args.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {args}: cannot replay {kv:?}"));
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

const RELEASE_BUILD: &str = "cargo build --release --locked";

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// The builder stage up to its first `cargo build` (the dependency layer),
/// replayed in a fresh directory; `edit` runs on that directory after the
/// copies and before the `RUN`. Returns the `RUN`'s exit status and output.
fn replay_dependency_layer(edit: impl FnOnce(&Path)) -> (bool, String) {
    let stages = dockerfile();
    let builder = &stages[0];
    let root = repo();
    let ignore = DockerIgnore::load(root);
    let dir = tempfile::tempdir().unwrap();
    // Outside the repository, so the repository's .cargo/ does not apply
    // (the image has none either); CARGO_HOME is the user's, filled by the
    // build that compiled this test.
    assert!(!dir.path().starts_with(root));
    let mut env: Vec<(String, String)> = Vec::new();
    let mut workdir_set = false;
    let mut edit = Some(edit);
    for ins in &builder.body {
        match ins.keyword.as_str() {
            "ENV" => env.extend(parse_env(&ins.args)),
            "WORKDIR" => {
                assert!(!workdir_set, "the replay maps one WORKDIR to its temp dir");
                workdir_set = true;
            }
            "COPY" => {
                assert!(workdir_set, "COPY before WORKDIR lands in /");
                replay_copy(&ins.args, root, dir.path(), &ignore);
            }
            "RUN" if !ins.args.contains("cargo build") => {
                assert!(
                    ins.args.contains("apt-get"),
                    "RUN {}: the replay skips only the apt-get step",
                    ins.args
                );
            }
            "RUN" => {
                assert_eq!(
                    ins.args.matches(RELEASE_BUILD).count(),
                    1,
                    "the dependency RUN runs `{RELEASE_BUILD}` once: {}",
                    ins.args
                );
                (edit.take().unwrap())(dir.path());
                let script = ins.args.replace(
                    RELEASE_BUILD,
                    &format!(
                        "\"$CARGO\" fetch --locked --offline --target {}",
                        host_triple()
                    ),
                );
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                // RUN's shell form is `/bin/sh -c` (dash in the rust image).
                let out = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&script)
                    .current_dir(dir.path())
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("CARGO", cargo)
                    .output()
                    .unwrap();
                let text = format!(
                    "$ {script}\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return (out.status.success(), text);
            }
            "ARG" | "LABEL" => {}
            other => panic!("the replay does not know `{other} {}`", ins.args),
        }
    }
    panic!("the builder stage has no RUN with `cargo build`")
}

/// `major.minor` of a `rust:1.95-bookworm`-style image, and of a
/// `rust-version = "1.94"`.
fn major_minor(v: &str) -> (u32, u32) {
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b),
        _ => panic!("not a major.minor version: {v:?}"),
    }
}

fn manifest() -> toml::Table {
    std::fs::read_to_string(repo().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn builder_stage_replays_against_the_manifest() {
    let (ok, out) = replay_dependency_layer(|_| {});
    assert!(
        ok,
        "docker/Dockerfile's dependency layer fails against Cargo.toml/Cargo.lock:\n{out}"
    );

    // The image's toolchain satisfies the manifest's floor.
    let stages = dockerfile();
    let image = stages[0].from.split_whitespace().next().unwrap();
    let tag = image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the builder is not an official rust image: {image}"));
    let floor = manifest()["package"]["rust-version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        major_minor(tag) >= major_minor(&floor),
        "FROM {image} is older than rust-version = {floor}"
    );
}

#[test]
fn builder_stage_stubs_follow_targets_added_to_the_manifest() {
    // A bench and a test the stub step has never heard of: derived stubs
    // keep the layer building; a hand-written list would not.
    let (ok, out) = replay_dependency_layer(|dir| {
        let mut m = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        m.push_str(
            "\n[[bench]]\nname = \"added_bench\"\nharness = false\n\n\
             [[test]]\nname = \"added\"\npath = \"tests/added/main.rs\"\n",
        );
        std::fs::write(dir.join("Cargo.toml"), m).unwrap();
    });
    assert!(ok, "a newly declared target breaks the replay:\n{out}");
}

#[test]
fn builder_stage_replay_notices_a_manifest_the_lock_does_not_match() {
    // The negative control: the replay runs cargo with --locked against the
    // copied manifest, so a new direct dependency (one already in the
    // graph, so only the lock's dependency list is stale) fails it.
    let (ok, out) = replay_dependency_layer(|dir| {
        let m = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(m.contains("[dependencies]\n"));
        let m = m.replacen("[dependencies]\n", "[dependencies]\nitoa = \"1\"\n", 1);
        std::fs::write(dir.join("Cargo.toml"), m).unwrap();
    });
    assert!(!ok, "a stale Cargo.lock went unnoticed:\n{out}");
    assert!(out.contains("--locked"), "{out}");
}

/// `include_str!`/`include_bytes!` targets under `src/`, context-relative.
fn included_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in context_files(root, "src", &DockerIgnore { patterns: vec![] }) {
        if !f.ends_with(".rs") {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&f)).unwrap();
        for mac in ["include_str!(\"", "include_bytes!(\""] {
            for (i, _) in text.match_indices(mac) {
                let rest = &text[i + mac.len()..];
                let Some(end) = rest.find('"') else { continue };
                let base = Path::new(&f).parent().unwrap();
                let joined = base.join(&rest[..end]);
                // Normalise `..` lexically; the files are inside the repo.
                let mut parts: Vec<String> = Vec::new();
                for c in joined.components() {
                    match c {
                        std::path::Component::ParentDir => {
                            parts.pop();
                        }
                        std::path::Component::Normal(s) => {
                            parts.push(s.to_string_lossy().into_owned())
                        }
                        _ => {}
                    }
                }
                out.push(parts.join("/"));
            }
        }
    }
    out
}

#[test]
fn later_copy_of_the_context_keeps_everything_the_build_reads() {
    // `COPY . .` then the release build: the sources, templates, vendored
    // patches, every declared target and every included file must survive
    // .dockerignore.
    let root = repo();
    let ignore = DockerIgnore::load(root);
    let m = manifest();
    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into()];
    for dir in ["src", "templates"] {
        needed.extend(context_files(root, dir, &DockerIgnore { patterns: vec![] }));
    }
    for (_, p) in m["patch"]["crates-io"].as_table().unwrap() {
        let path = p["path"].as_str().unwrap();
        needed.extend(context_files(
            root,
            path,
            &DockerIgnore { patterns: vec![] },
        ));
    }
    for kind in ["bin", "bench", "test", "example"] {
        for t in m.get(kind).and_then(|v| v.as_array()).into_iter().flatten() {
            let name = t["name"].as_str().unwrap();
            let default = match kind {
                "bin" => format!("src/bin/{name}.rs"),
                "bench" => format!("benches/{name}.rs"),
                "test" => format!("tests/{name}.rs"),
                _ => format!("examples/{name}.rs"),
            };
            let path = t.get("path").and_then(|p| p.as_str()).map(str::to_owned);
            needed.push(path.unwrap_or(default));
        }
    }
    let included = included_files(root);
    assert!(
        included.iter().any(|f| f == "config/demo.toml"),
        "the include_str! scan found nothing it should: {included:?}"
    );
    needed.extend(included);
    let lost: BTreeSet<&String> = needed.iter().filter(|f| ignore.excludes(f)).collect();
    assert!(
        lost.is_empty(),
        ".dockerignore leaves out files the release build reads: {lost:?}"
    );
    for f in &needed {
        assert!(root.join(f).is_file(), "{f} is needed but missing");
    }
}

/// The owning package of a library path, as dpkg knows it; with merged
/// /usr, the database may list it under the other spelling.
fn owner(path: &str) -> Option<String> {
    let canonical = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut candidates = vec![path.to_owned(), canonical];
    for c in candidates.clone() {
        if let Some(rest) = c.strip_prefix("/usr") {
            candidates.push(rest.to_owned());
        } else {
            candidates.push(format!("/usr{c}"));
        }
    }
    for c in candidates.iter().filter(|c| !c.is_empty()) {
        let out = Command::new("dpkg").args(["-S", c]).output().unwrap();
        if out.status.success() {
            let line = String::from_utf8(out.stdout).unwrap();
            let pkg = line.split(':').next().unwrap().trim().to_owned();
            return Some(pkg);
        }
    }
    None
}

/// Package names from a `Depends:`/`Pre-Depends:` value; every
/// alternative counts, since any of them may be what got installed.
fn depends_names(field: &str) -> Vec<String> {
    field
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .map(|d| d.split(':').next().unwrap_or("").to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Everything `apt-get install` of `listed` brings in (the Depends
/// closure of what is installed on this machine, which is the same Debian
/// release as the runtime image).
fn depends_closure(listed: &[String]) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = listed.to_vec();
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Depends}, ${Pre-Depends}", &p])
            .output()
            .unwrap();
        if out.status.success() {
            todo.extend(depends_names(&String::from_utf8_lossy(&out.stdout)));
        }
    }
    seen
}

/// In every Debian bookworm-slim image (Essential: yes or its
/// dependencies), so the runtime stage need not list them.
const BOOKWORM_SLIM_BASE: &[&str] = &["libc6", "libgcc-s1"];

#[test]
fn runtime_stage_installs_the_libraries_the_binary_links() {
    let stages = dockerfile();
    let runtime = &stages[1];
    assert!(
        runtime.from.starts_with("debian:bookworm"),
        "the owners below are looked up on Debian 12; the runtime image is {}",
        runtime.from
    );
    let install = runtime
        .body
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("apt-get install"))
        .expect("the runtime stage installs its libraries with apt-get");
    let after = install.args.split("apt-get install").nth(1).unwrap();
    let listed: Vec<String> = after
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|w| !w.starts_with('-'))
        .map(str::to_owned)
        .collect();
    assert!(listed.iter().any(|p| p == "ca-certificates"), "{listed:?}");

    let bin = env!("CARGO_BIN_EXE_portcullis");
    let objdump = Command::new("objdump").args(["-p", bin]).output().unwrap();
    assert!(objdump.status.success());
    let needed: Vec<String> = String::from_utf8(objdump.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(|s| s.trim().to_owned())
        .collect();
    assert!(
        needed.iter().any(|n| n.starts_with("libxmlsec1")),
        "objdump found no libxmlsec1 among {needed:?}"
    );

    // soname -> resolved path, for the whole closure.
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    assert!(ldd.status.success());
    let mut closure: BTreeMap<String, String> = BTreeMap::new();
    for line in String::from_utf8(ldd.stdout).unwrap().lines() {
        let line = line.trim();
        if line.starts_with("linux-vdso") {
            continue;
        }
        let (name, path) = match line.split_once(" => ") {
            Some((n, rest)) => (n.trim(), rest.split_whitespace().next().unwrap()),
            None => {
                let p = line.split_whitespace().next().unwrap();
                (Path::new(p).file_name().unwrap().to_str().unwrap(), p)
            }
        };
        assert_ne!(path, "not", "{name} is not found on this machine: {line}");
        closure.insert(name.to_owned(), path.to_owned());
    }
    for n in &needed {
        assert!(
            closure.contains_key(n),
            "ldd does not resolve NEEDED {n}: {closure:?}"
        );
    }

    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for (soname, path) in &closure {
        let pkg = owner(path).unwrap_or_else(|| panic!("no package owns {path} ({soname})"));
        owners.insert(soname.clone(), pkg);
    }
    let provided = depends_closure(&listed);
    for (soname, pkg) in &owners {
        assert!(
            provided.contains(pkg) || BOOKWORM_SLIM_BASE.contains(&pkg.as_str()),
            "the binary links {soname} from {pkg}, which the runtime stage neither \
             installs nor gets through a listed package's dependencies (listed: {listed:?})"
        );
    }
    let owning: BTreeSet<&String> = owners.values().collect();
    for p in listed.iter().filter(|p| *p != "ca-certificates") {
        assert!(
            owning.contains(p),
            "the runtime stage installs {p}, which owns none of the linked libraries \
             {owners:?}: drop it or say why"
        );
    }
}

/// The replay's own parser, on the shapes docker/Dockerfile uses.
#[test]
fn dockerfile_parser_joins_continuations_and_drops_comments() {
    let stages = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a AS b\n# c\nRUN x \\\n # inner\n && y\nENV A=1 B=2\nFROM c\nCOPY --from=b /x /y\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].from, "a AS b");
    assert_eq!(stages[0].body[0].keyword, "RUN");
    assert_eq!(stages[0].body[0].args, "x && y");
    assert_eq!(
        parse_env(&stages[0].body[1].args),
        vec![("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    assert_eq!(stages[1].body[0].args, "--from=b /x /y");
}
