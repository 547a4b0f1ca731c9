//! Devices of attachments whose NAD names a device-plugin resource
//! (`k8s.v1.cni.cncf.io/resourceName`): device IDs from the kubelet ([`DeviceSource`]), injected
//! as `deviceID`/`pciBusID` (into a conf, or every plugin of a conflist, as the reference does)
//! and as runtimeConfig `deviceID`; plus the NPWG device-info file each such delegate may fill
//! (runtimeConfig `CNIDeviceInfoFile`).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::{
    cni::ContainerId,
    config::MultusConf,
    delegate::{cache::PodRef, Attachment},
};

use super::{
    devinfo::{self, DevInfoDir, DevInfoError, CNI_DEVICE_INFO_FILE},
    DeviceError, DeviceSource, PodIdentity, DEFAULT_CHECKPOINT, DEFAULT_SOCKET, DEFAULT_TIMEOUT,
};

/// The device-info directory of this configuration.
pub fn devinfo_dir(conf: &MultusConf) -> DevInfoDir {
    conf.device_info_dir
        .clone()
        .map(DevInfoDir::new)
        .unwrap_or_default()
}

/// Where this configuration finds device IDs (its kubelet socket and checkpoint, within its API
/// deadline).
pub fn device_source(conf: &MultusConf) -> DeviceSource {
    DeviceSource {
        socket: conf
            .pod_resources_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        checkpoint: conf
            .device_checkpoint_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT)),
        timeout: conf.api_deadline().min(DEFAULT_TIMEOUT),
    }
}

/// Gives each attachment with a resource (and no device from the annotation) its device.
pub fn assign(
    conf: &MultusConf,
    attachments: &mut [Attachment],
    pod: Option<&PodRef>,
) -> Result<(), DeviceError> {
    if !attachments
        .iter()
        .any(|a| a.resource_name.is_some() && a.device_id.is_none())
    {
        return Ok(());
    }
    let pod = pod.ok_or_else(|| {
        DeviceError::InvalidPod(
            "a network names a device resource, but the runtime named no pod".into(),
        )
    })?;
    let identity = PodIdentity {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
    };
    let mut devices = device_source(conf).pod_devices(&identity)?;
    for a in attachments.iter_mut() {
        let (Some(resource), None) = (a.resource_name.clone(), a.device_id.as_ref()) else {
            continue;
        };
        let id = devices
            .take_next(&resource)
            .ok_or_else(|| DeviceError::NotAllocated {
                pod: identity.to_string(),
                resource: resource.clone(),
                from: devices.source,
            })?;
        inject(a, &id);
    }
    Ok(())
}

/// Injects a device into the attachment's configuration.
fn inject(a: &mut Attachment, id: &str) {
    let raw = a.network.raw_mut();
    match raw.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => {
            for p in plugins.iter_mut().filter_map(Value::as_object_mut) {
                p.insert("deviceID".into(), json!(id));
                p.insert("pciBusID".into(), json!(id));
            }
        }
        None => {
            raw.insert("deviceID".into(), json!(id));
            raw.insert("pciBusID".into(), json!(id));
        }
    }
    a.runtime_config.insert("deviceID".into(), json!(id));
    a.device_id = Some(id.to_string());
}

/// Part of the plan: the device-info file path goes into runtimeConfig (for plugins that declare
/// `CNIDeviceInfoFile`). Nothing is written.
pub fn plan_info_files(
    conf: &MultusConf,
    container_id: &ContainerId,
    attachments: &mut [Attachment],
) -> Result<(), DevInfoError> {
    let dir = devinfo_dir(conf);
    for a in attachments.iter_mut().filter(|a| a.device_id.is_some()) {
        let path = dir.cni_path(&a.name, container_id, &a.ifname)?;
        a.runtime_config
            .insert(CNI_DEVICE_INFO_FILE.into(), json!(path));
    }
    Ok(())
}

/// Before the delegates of ADD: each device-info file is pre-filled from the device plugin's file
/// when there is one.
pub fn prefill_info_files(
    conf: &MultusConf,
    container_id: &ContainerId,
    attachments: &[Attachment],
) -> Result<(), DevInfoError> {
    let dir = devinfo_dir(conf);
    for a in attachments {
        let (Some(resource), Some(id)) = (a.resource_name.as_deref(), a.device_id.as_deref())
        else {
            continue;
        };
        let path = dir.cni_path(&a.name, container_id, &a.ifname)?;
        dir.copy_dp_to_cni(resource, id, &path)?;
    }
    Ok(())
}

/// For attachments read from the reference Multus's cache: the device-info path it gives a
/// delegate with a device (runtimeConfig `CNIDeviceInfoFile`), unless one is recorded.
pub fn add_info_paths(
    conf: &MultusConf,
    container_id: &ContainerId,
    attachments: &mut [Attachment],
) {
    let dir = devinfo_dir(conf);
    for a in attachments.iter_mut().filter(|a| a.device_id.is_some()) {
        if a.runtime_config.contains_key(CNI_DEVICE_INFO_FILE) {
            continue;
        }
        match dir.cni_path(&a.name, container_id, &a.ifname) {
            Ok(path) => {
                a.runtime_config
                    .insert(CNI_DEVICE_INFO_FILE.into(), json!(path));
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// The device-info of an attachment, for network-status.
pub fn info(conf: &MultusConf, container_id: &ContainerId, a: &Attachment) -> Option<Value> {
    a.device_id.as_ref()?;
    let path = devinfo_dir(conf)
        .cni_path(&a.name, container_id, &a.ifname)
        .ok()?;
    match devinfo::load(&path) {
        Ok(Some(info)) => serde_json::to_value(info).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// After DEL: the attachments' device-info files are removed.
pub fn remove_info_files(
    conf: &MultusConf,
    container_id: &ContainerId,
    attachments: &[Attachment],
) {
    let dir = devinfo_dir(conf);
    for a in attachments.iter().filter(|a| a.device_id.is_some()) {
        if let Err(e) = dir
            .cni_path(&a.name, container_id, &a.ifname)
            .and_then(|p| devinfo::remove(&p))
        {
            tracing::warn!("{e}");
        }
    }
}
