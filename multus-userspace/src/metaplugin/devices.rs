//! Devices of attachments whose NAD names a device-plugin resource
//! (`k8s.v1.cni.cncf.io/resourceName`): device IDs from the kubelet (PodResources API, with the
//! device-manager checkpoint as fallback), injected as `deviceID`/`pciBusID` (into a conf, or every
//! plugin of a conflist, as the reference does) and as runtimeConfig `deviceID`; plus the NPWG
//! device-info file each such delegate may fill (runtimeConfig `CNIDeviceInfoFile`).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::{
    delegate::Attachment,
    error::Error,
    kube::{
        devinfo::{self, DevInfoDir, CNI_DEVICE_INFO_FILE},
        podresources::{self, DeviceError, DeviceSource, PodIdentity},
    },
};

use super::Call;

/// The device-info directory of this configuration.
pub fn devinfo_dir(call: &Call<'_>) -> DevInfoDir {
    call.conf
        .device_info_dir
        .clone()
        .map(DevInfoDir::new)
        .unwrap_or_default()
}

/// Gives each attachment with a resource (and no device from the annotation) its device.
pub fn assign(
    call: &Call<'_>,
    attachments: &mut [Attachment],
    pod: Option<&crate::delegate::cache::PodRef>,
) -> Result<(), Error> {
    if !attachments
        .iter()
        .any(|a| a.resource_name.is_some() && a.device_id.is_none())
    {
        return Ok(());
    }
    let pod = pod.ok_or_else(|| {
        Error::Device(DeviceError::InvalidPod(
            "a network names a device resource, but the runtime named no pod".into(),
        ))
    })?;
    let source = DeviceSource {
        socket: call
            .conf
            .pod_resources_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(podresources::DEFAULT_SOCKET)),
        checkpoint: call
            .conf
            .device_checkpoint_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(podresources::DEFAULT_CHECKPOINT)),
        timeout: call.conf.api_deadline().min(podresources::DEFAULT_TIMEOUT),
    };
    let identity = PodIdentity {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
    };
    let mut devices = source.pod_devices(&identity)?;
    for a in attachments.iter_mut() {
        let (Some(resource), None) = (a.resource_name.clone(), a.device_id.as_ref()) else {
            continue;
        };
        let id = devices.take_next(&resource).ok_or_else(|| {
            Error::Device(DeviceError::NotAllocated {
                pod: identity.to_string(),
                resource: resource.clone(),
                from: devices.source,
            })
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
pub fn plan_info_files(call: &Call<'_>, attachments: &mut [Attachment]) -> Result<(), Error> {
    let dir = devinfo_dir(call);
    for a in attachments.iter_mut().filter(|a| a.device_id.is_some()) {
        let path = dir.cni_path(&a.name, &call.req.container_id, &a.ifname)?;
        a.runtime_config
            .insert(CNI_DEVICE_INFO_FILE.into(), json!(path));
    }
    Ok(())
}

/// Before the delegates of ADD: each device-info file is pre-filled from the device plugin's file
/// when there is one.
pub fn prefill_info_files(call: &Call<'_>, attachments: &[Attachment]) -> Result<(), Error> {
    let dir = devinfo_dir(call);
    for a in attachments {
        let (Some(resource), Some(id)) = (a.resource_name.as_deref(), a.device_id.as_deref())
        else {
            continue;
        };
        let path = dir.cni_path(&a.name, &call.req.container_id, &a.ifname)?;
        dir.copy_dp_to_cni(resource, id, &path)?;
    }
    Ok(())
}

/// The device-info of an attachment, for network-status.
pub fn info(call: &Call<'_>, a: &Attachment) -> Option<Value> {
    a.device_id.as_ref()?;
    let path = devinfo_dir(call)
        .cni_path(&a.name, &call.req.container_id, &a.ifname)
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
pub fn remove_info_files(call: &Call<'_>, container_id: &str, attachments: &[Attachment]) {
    let dir = devinfo_dir(call);
    for a in attachments.iter().filter(|a| a.device_id.is_some()) {
        if let Err(e) = dir
            .cni_path(&a.name, container_id, &a.ifname)
            .and_then(|p| devinfo::remove(&p))
        {
            tracing::warn!("{e}");
        }
    }
}
