//! The environment each function starts with: what `template.yaml` declares for it, valued
//! from `env.json`, as `sam local --env-vars env.json` gives it.

use super::*;

/// A scalar of the template as the text of an environment variable; `None` for an intrinsic
/// function (`!Ref`, `!GetAtt`, ...), except a `!Ref` to a parameter with a default.
pub(super) fn template_scalar(value: &Yaml, parameters: Option<&Yaml>) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str()?;
            template_scalar(parameters?.get(name)?.get("Default")?, None)
        }
        _ => None,
    }
}

/// Everything the driver needs from `template.yaml` and `env.json` to start each function as
/// `sam local` would.
pub(super) struct Environments {
    /// By binary: each variable the function declares, with its value.
    functions: BTreeMap<String, Vec<(String, String)>>,
    /// By binary: the function's `MemorySize`.
    memory: BTreeMap<String, String>,
    /// What Lambda sets from `Globals.Function.LoggingConfig`.
    log_format: String,
    log_level: String,
}

impl Environments {
    pub(super) fn load() -> Result<Self, String> {
        let path = repository().join("template.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("template.yaml: {e}"))?;
        let template: Yaml =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("template.yaml: {e}"))?;
        let text = std::fs::read_to_string(repository().join("env.json"))
            .map_err(|e| format!("env.json: {e}"))?;
        let env_file: Value = serde_json::from_str(&text).map_err(|e| format!("env.json: {e}"))?;

        let parameters = template.get("Parameters");
        let globals = template.get("Globals").and_then(|g| g.get("Function"));
        let variables_of = |function: Option<&Yaml>| -> Vec<(String, Option<String>)> {
            function
                .and_then(|f| f.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Yaml::as_mapping)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), template_scalar(v, parameters))))
                .collect()
        };
        let global_variables = variables_of(globals);
        let scalar = |value: Option<&Yaml>| value.and_then(|v| template_scalar(v, parameters));
        let global_memory = scalar(globals.and_then(|g| g.get("MemorySize")));
        let logging = globals.and_then(|g| g.get("LoggingConfig"));
        let log_format =
            scalar(logging.and_then(|l| l.get("LogFormat"))).unwrap_or_else(|| "Text".to_owned());
        let log_level = scalar(logging.and_then(|l| l.get("ApplicationLogLevel")))
            .unwrap_or_else(|| "INFO".to_owned());

        let mut functions = BTreeMap::new();
        let mut memory = BTreeMap::new();
        let resources = template
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .ok_or("template.yaml: no Resources")?;
        for (logical_id, resource) in resources {
            if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical_id = logical_id.as_str().unwrap_or_default();
            let binary = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Yaml::as_str)
                .ok_or_else(|| format!("template.yaml: {logical_id} has no Binary"))?;
            let properties = resource.get("Properties");
            // Declared variables: the function's own win over Globals'.
            let mut declared: BTreeMap<String, Option<String>> =
                global_variables.iter().cloned().collect();
            declared.extend(variables_of(properties));
            // As `sam local --env-vars`: the function's section of env.json, then Parameters,
            // then the template's own value; only for declared variables.
            let value = |name: &str, fallback: Option<String>| {
                [&env_file[logical_id], &env_file["Parameters"]]
                    .into_iter()
                    .find_map(|section| template_scalar_json(&section[name]))
                    .or(fallback)
                    .unwrap_or_default()
            };
            let env: Vec<(String, String)> = declared
                .into_iter()
                .map(|(name, fallback)| {
                    let v = value(&name, fallback);
                    (name, v)
                })
                .collect();
            functions.insert(binary.to_owned(), env);
            if let Some(size) =
                scalar(properties.and_then(|p| p.get("MemorySize"))).or(global_memory.clone())
            {
                memory.insert(binary.to_owned(), size);
            }
        }
        Ok(Self {
            functions,
            memory,
            log_format,
            log_level,
        })
    }

    /// The environment of `binary`: its declared variables, the loopback endpoints in place of
    /// env.json's (which point at Docker's host), and what Lambda sets itself.
    pub(super) fn of(
        &self,
        binary: &str,
        endpoints: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, String> {
        let mut env = if binary == FLOOR {
            Vec::new()
        } else {
            self.functions.get(binary).cloned().ok_or_else(|| {
                format!("template.yaml declares no function with Binary: {binary}")
            })?
        };
        for (name, value) in endpoints {
            if let Some(entry) = env.iter_mut().find(|(n, _)| n == name) {
                entry.1 = (*value).to_owned();
            }
        }
        let memory = self.memory.get(binary).map_or("128", String::as_str);
        env.extend(
            AWS.into_iter()
                .chain([
                    ("AWS_LAMBDA_LOG_FORMAT", self.log_format.as_str()),
                    ("AWS_LAMBDA_LOG_LEVEL", self.log_level.as_str()),
                    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory),
                ])
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        Ok(env)
    }
}

/// A value of env.json as the text of an environment variable.
pub(super) fn template_scalar_json(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ------------------------------------------------------------------ SES v2 stand-in
