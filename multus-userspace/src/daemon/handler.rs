//! One `/cni` call inside the daemon: the request's environment and stdin become the same
//! [`Request`] and [`MultusConf`] the thin binary builds from its process, and the call runs
//! through the same [`metaplugin::run_command`]. Synchronous: the server runs it on a blocking
//! thread.

use serde_json::{Map, Value};

use super::{
    api::{self, CniRequest, CniResponse},
    config,
};
use crate::{
    cni::{
        runner::{version_hint, version_info},
        CniError, CniVersion, Command, ErrorCode, Request,
    },
    error::Error,
    fault,
    metaplugin::{self, Services},
};

/// What the server sends back: 200 with a body (maybe empty), or 400 with a CNI error.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// 200.
    Ok(Vec<u8>),
    /// 400 with the CNI error JSON.
    Failed(Vec<u8>),
}

/// The command of a request (`None` when `CNI_COMMAND` is missing or unknown: the call fails).
pub fn command_of(req: &CniRequest) -> Option<Command> {
    req.env.get("CNI_COMMAND").and_then(|c| Command::parse(c))
}

/// Runs one call: environment from the request, stdin overlaid with the daemon configuration.
pub fn handle(req: &CniRequest, daemon: &Map<String, Value>, services: &Services) -> Outcome {
    let hint = version_hint(&req.config);
    match run(req, daemon, services) {
        Ok(None) => Outcome::Ok(Vec::new()),
        Ok(Some(result)) => {
            Outcome::Ok(serde_json::to_vec(&CniResponse { result }).unwrap_or_default())
        }
        Err(e) => Outcome::Failed(serde_json::to_vec(&e.to_json(hint)).unwrap_or_default()),
    }
}

fn run(
    req: &CniRequest,
    daemon: &Map<String, Value>,
    services: &Services,
) -> Result<Option<Value>, CniError> {
    let request = Request::from_lookup(|k| req.env.get(k).cloned())?;
    if request.command == Command::Version {
        return Ok(Some(version_info(&req.config)));
    }
    let stdin = config::overlay(&req.config, daemon)
        .map_err(|e| CniError::new(ErrorCode::DecodingFailure, e))?;
    let (conf, ignored) = metaplugin::parse_conf(request.command, &stdin)?;
    fault::point(fault::command_step(
        request.command,
        fault::Step::ConfigRead,
    ));
    crate::logging::report_ignored("multus-daemon", request.command.as_str(), &ignored);
    let requested = conf.version().map_err(Error::from)?;
    let result = metaplugin::run_command_with(&request, &conf, services)?;
    result.map(|r| to_wire(&r, requested)).transpose()
}

/// The result in the version it travels in ([`api::wire_version`]).
fn to_wire(result: &Value, requested: CniVersion) -> Result<Value, CniError> {
    api::result_for_runtime(result, api::wire_version(requested)).map_err(|e| {
        CniError::new(
            ErrorCode::Plugin(999),
            format!("internal error: the result cannot be converted for the shim: {e}"),
        )
    })
}

/// A refusal before the call runs (queue full, shutting down, bad body): the CNI error JSON.
pub fn refusal(code: ErrorCode, msg: impl Into<String>, stdin: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&CniError::new(code, msg).to_json(version_hint(stdin))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(env: &[(&str, &str)], config: &str) -> CniRequest {
        CniRequest::new(
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            config.as_bytes(),
        )
    }

    fn none() -> Services {
        Services::default()
    }

    fn error_of(o: Outcome) -> Value {
        match o {
            Outcome::Failed(b) => serde_json::from_slice(&b).unwrap(),
            Outcome::Ok(b) => panic!("expected a failure, got {}", String::from_utf8_lossy(&b)),
        }
    }

    #[test]
    fn the_environment_comes_from_the_request() {
        // The daemon's own process has no CNI_COMMAND: the request's is used.
        let e = error_of(handle(
            &req(&[("CNI_COMMAND", "ADD")], r#"{"cniVersion":"0.4.0"}"#),
            &Map::new(),
            &none(),
        ));
        assert_eq!(e["code"], 4);
        assert_eq!(e["cniVersion"], "0.4.0");
        assert!(
            e["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
            "{e}"
        );
        let e = error_of(handle(&req(&[], "{}"), &Map::new(), &none()));
        assert!(e["msg"].as_str().unwrap().contains("CNI_COMMAND"), "{e}");
    }

    #[test]
    fn version_is_answered_and_bad_config_is_a_cni_error() {
        let ok = handle(
            &req(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#),
            &Map::new(),
            &none(),
        );
        let Outcome::Ok(body) = ok else {
            panic!("{ok:?}")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Result"]["cniVersion"], "1.0.0");
        let env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/opt/cni/bin")];
        let daemon: Map<String, Value> = serde_json::from_str(r#"{"cniDir":"/x"}"#).unwrap();
        let e = error_of(handle(&req(&env, "not json"), &daemon, &none()));
        assert_eq!(e["code"], 6, "{e}");
        let e = error_of(handle(
            &req(&env, r#"{"cniVersion":"1.1.0","type":"multus-shim"}"#),
            &daemon,
            &none(),
        ));
        assert_eq!(e["code"], 7, "{e}");
    }

    #[test]
    fn commands_are_read_without_parsing_the_rest() {
        assert_eq!(
            command_of(&req(&[("CNI_COMMAND", "DEL")], "")),
            Some(Command::Del)
        );
        assert_eq!(
            command_of(&req(&[("CNI_COMMAND", "ADD")], "")),
            Some(Command::Add)
        );
        assert_eq!(command_of(&req(&[("CNI_COMMAND", "x")], "")), None);
    }
}
