//! A container's name and image, by its id (which [`crate::attribution`]
//! reads from the cgroup path), from the records its runtime keeps on the
//! host. No runtime API is called: the daemon may be absent (Podman) or
//! slow, and the files are what `docker inspect` itself reads.
//!
//! | runtime | record |
//! |---|---|
//! | Docker | `<docker>/containers/<id>/config.v2.json`: `Name`, `Config.Image` |
//! | Podman | `<podman>/overlay-containers/containers.json` (`names`, `image` id) and `overlay-images/images.json` (`names`) |
//! | containerd (CRI, nerdctl) | `<containerd>/<namespace>/<id>/config.json` (OCI spec): annotations |
//!
//! The parsers are pure; [`ContainerRecords::lookup`] does the reading, and
//! [`ContainerRecords::cached`] keeps what it read per id: attribution runs
//! once per connection, and Podman's record holds every container.

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

use serde_json::Value;

/// What a runtime's records say about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: Option<String>,
    pub image: Option<String>,
}

/// Where the runtimes keep their records (their default paths unless
/// configured: `[containers]` in the agent's config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerRecords {
    /// Docker's data root (`dockerd --data-root`).
    pub docker_root: PathBuf,
    /// Podman's (containers/storage) graph root.
    pub podman_root: PathBuf,
    /// containerd's v2 task state (one directory per namespace).
    pub containerd_tasks: PathBuf,
}

impl Default for ContainerRecords {
    fn default() -> Self {
        ContainerRecords {
            docker_root: "/var/lib/docker".into(),
            podman_root: "/var/lib/containers/storage".into(),
            containerd_tasks: "/run/containerd/io.containerd.runtime.v2.task".into(),
        }
    }
}

static RECORDS: OnceLock<ContainerRecords> = OnceLock::new();

/// Container ids kept with what their records said (a renamed container
/// keeps its old name here until it falls out).
const CACHED_CONTAINERS: usize = 1024;
static LOOKUPS: LazyLock<quick_cache::sync::Cache<String, ContainerInfo>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CACHED_CONTAINERS));

impl ContainerRecords {
    /// Sets the record locations for this process, once, at start
    /// (attribution runs deep inside listeners that carry no config).
    pub fn install(records: ContainerRecords) {
        let _ = RECORDS.set(records);
    }

    /// The installed locations, or the defaults.
    pub fn current() -> &'static ContainerRecords {
        RECORDS.get_or_init(ContainerRecords::default)
    }

    /// [`ContainerRecords::lookup`] of the installed records, once per id.
    pub fn cached(id: &str) -> ContainerInfo {
        if let Some(info) = LOOKUPS.get(id) {
            return info;
        }
        let info = Self::current().lookup(id);
        // Not remembered when unknown: its record may not be written yet.
        if info != ContainerInfo::default() {
            LOOKUPS.insert(id.to_string(), info.clone());
        }
        info
    }

    /// The name and image of container `id`; empty when no runtime knows it.
    pub fn lookup(&self, id: &str) -> ContainerInfo {
        // Ids come from a cgroup path a container's own root may shape:
        // only hex reaches a file name.
        if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return ContainerInfo::default();
        }
        if let Some(info) =
            read_json(&self.docker_root.join("containers").join(id).join("config.v2.json")).map(|v| docker_config(&v))
        {
            return info;
        }
        if let Some(containers) = read_json(&self.podman_root.join("overlay-containers/containers.json")) {
            let images = read_json(&self.podman_root.join("overlay-images/images.json"));
            if let Some(info) = podman_container(&containers, images.as_ref(), id) {
                return info;
            }
        }
        if let Ok(namespaces) = std::fs::read_dir(&self.containerd_tasks) {
            for ns in namespaces.flatten() {
                if let Some(spec) = read_json(&ns.path().join(id).join("config.json")) {
                    return oci_annotations(&spec);
                }
            }
        }
        ContainerInfo::default()
    }
}

/// Records are small; a huge file is not one.
const MAX_RECORD_BYTES: u64 = 16 << 20;

fn read_json(path: &Path) -> Option<Value> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_RECORD_BYTES {
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Docker's `config.v2.json`: `Name` is `/name`.
pub fn docker_config(v: &Value) -> ContainerInfo {
    ContainerInfo {
        name: text(v.get("Name")).map(|n| n.trim_start_matches('/').to_string()),
        image: text(v.pointer("/Config/Image")),
    }
}

/// Podman's `containers.json` (an array of layers' containers) and
/// `images.json`: the container names its image by id.
pub fn podman_container(containers: &Value, images: Option<&Value>, id: &str) -> Option<ContainerInfo> {
    let c = containers.as_array()?.iter().find(|c| c["id"].as_str() == Some(id))?;
    let image_id = c["image"].as_str();
    let image = images
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|i| i["id"].as_str() == image_id))
        .and_then(|i| text(i["names"].get(0)))
        .or_else(|| image_id.map(str::to_string));
    Some(ContainerInfo {
        name: text(c["names"].get(0)),
        image,
    })
}

/// An OCI runtime spec's annotations, as CRI (Kubernetes) and nerdctl set them.
pub fn oci_annotations(spec: &Value) -> ContainerInfo {
    let a = &spec["annotations"];
    ContainerInfo {
        name: text(a.get("io.kubernetes.cri.container-name")).or_else(|| text(a.get("nerdctl/name"))),
        image: text(a.get("io.kubernetes.cri.image-name")).or_else(|| text(a.get("nerdctl/image"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "4f1c1a0e9b3d7c2a8e6f5d4c3b2a190817263544536271809a8b7c6d5e4f3a2b";

    #[test]
    fn docker_names_its_container_with_a_slash_and_its_image_in_config() {
        let v = json!({"ID": ID, "Name": "/agent-box", "Config": {"Image": "python:3.12-slim", "Env": ["SECRET=x"]}});
        assert_eq!(
            docker_config(&v),
            ContainerInfo {
                name: Some("agent-box".into()),
                image: Some("python:3.12-slim".into())
            }
        );
    }

    #[test]
    fn podman_names_the_image_through_the_images_file_or_by_id() {
        let containers = json!([{"id": "other", "names": ["x"]}, {"id": ID, "names": ["devbox"], "image": "img1"}]);
        let images = json!([{"id": "img1", "names": ["docker.io/library/node:22"]}]);
        let info = podman_container(&containers, Some(&images), ID).unwrap();
        assert_eq!(info.name.as_deref(), Some("devbox"));
        assert_eq!(info.image.as_deref(), Some("docker.io/library/node:22"));
        let info = podman_container(&containers, None, ID).unwrap();
        assert_eq!(info.image.as_deref(), Some("img1"));
        assert_eq!(podman_container(&containers, None, "absent"), None);
    }

    #[test]
    fn kubernetes_and_nerdctl_annotations_name_container_and_image() {
        let cri = json!({"annotations": {"io.kubernetes.cri.container-name": "coder", "io.kubernetes.cri.image-name": "ghcr.io/acme/coder:1"}});
        assert_eq!(oci_annotations(&cri).name.as_deref(), Some("coder"));
        assert_eq!(oci_annotations(&cri).image.as_deref(), Some("ghcr.io/acme/coder:1"));
        let nerdctl = json!({"annotations": {"nerdctl/name": "box"}});
        assert_eq!(oci_annotations(&nerdctl).name.as_deref(), Some("box"));
        assert_eq!(oci_annotations(&json!({})), ContainerInfo::default());
    }

    #[test]
    fn records_are_read_from_each_runtimes_layout_and_ids_never_escape_them() {
        let dir = tempfile::tempdir().unwrap();
        let records = ContainerRecords {
            docker_root: dir.path().join("docker"),
            podman_root: dir.path().join("podman"),
            containerd_tasks: dir.path().join("containerd"),
        };
        let docker = records.docker_root.join("containers").join(ID);
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::write(
            docker.join("config.v2.json"),
            r#"{"Name":"/box","Config":{"Image":"debian:13"}}"#,
        )
        .unwrap();
        assert_eq!(records.lookup(ID).image.as_deref(), Some("debian:13"));

        let cri_id = "ab".repeat(32);
        let task = records.containerd_tasks.join("k8s.io").join(&cri_id);
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(
            task.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.container-name":"c","io.kubernetes.cri.image-name":"i"}}"#,
        )
        .unwrap();
        assert_eq!(records.lookup(&cri_id).name.as_deref(), Some("c"));

        assert_eq!(records.lookup("../../etc"), ContainerInfo::default());
        assert_eq!(records.lookup(&"cd".repeat(32)), ContainerInfo::default());
    }
}
