//! `CNI_ARGS` (`K=V;K=V`) and the pod identity taken from it. Invariant: parsed arguments
//! written back (`Display`) parse to the same arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::cni::{CniArgs, PodIdentity};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut args) = CniArgs::parse(s) else {
        return;
    };
    let _ = PodIdentity::from_args(&args);
    let _ = args.get("K8S_POD_NAME");
    let written = args.to_string();
    match CniArgs::parse(&written) {
        Ok(again) => assert_eq!(
            again, args,
            "CNI_ARGS written back parse differently: {written:?}"
        ),
        Err(e) => panic!("CNI_ARGS written back are refused: {e}: {written:?}"),
    }
    args.set("IgnoreUnknown", "1");
    let _ = CniArgs::parse(&args.to_string());
});
