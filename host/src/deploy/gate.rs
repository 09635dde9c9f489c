//! The validation gate every uploaded version passes before it may be
//! activated.
//!
//! Loading a component already performs most checks, in a fixed order
//! ([`Runtime::load`]): it is a component, it compiles, it imports only
//! what the sandbox links, it exports a contract version this host knows,
//! and `describe()` answers within the limits. The gate names each of them,
//! so a rejection says which check failed and which were never reached, then
//! runs the attached cases, each under the runtime's fuel ceiling (and the
//! case's own `max_fuel` when it sets one).

use serde::{Deserialize, Serialize};

use crate::cases::CasesFile;
use crate::contract::PolicyInfo;
use crate::policy::{LoadError, Policy, Runtime};

/// One named check of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    /// The bytes are a WebAssembly component (not a core module).
    Component,
    /// It compiles for this host's engine.
    Compiles,
    /// It imports only `lethe:policy/host` and capability-free WASI.
    Imports,
    /// It implements a contract version this host supports.
    Contract,
    /// `describe()` answers within the fuel, time and memory limits.
    Describe,
    /// The cases file parses and every case passes.
    Cases,
}

impl CheckName {
    /// In the order they run; a failure skips the ones after it.
    const ORDER: [CheckName; 6] = [
        CheckName::Component,
        CheckName::Compiles,
        CheckName::Imports,
        CheckName::Contract,
        CheckName::Describe,
        CheckName::Cases,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Component => "component",
            CheckName::Compiles => "compiles",
            CheckName::Imports => "imports",
            CheckName::Contract => "contract",
            CheckName::Describe => "describe",
            CheckName::Cases => "cases",
        }
    }

    /// The check a load failure belongs to.
    fn of(error: &LoadError) -> CheckName {
        match error {
            LoadError::NotAComponent(_) => CheckName::Component,
            LoadError::Invalid(_) | LoadError::Engine(_) | LoadError::Read { .. } => {
                CheckName::Compiles
            }
            LoadError::ForbiddenImport(_) => CheckName::Imports,
            LoadError::WrongWorld(_) | LoadError::UnsupportedVersion { .. } => CheckName::Contract,
            LoadError::Describe(_) => CheckName::Describe,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not run: an earlier check failed (or, for cases, none were attached).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    pub check: CheckName,
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One attached case, as run at upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// `allow`, `escalate`, `deny`, or `fault`.
    pub outcome: String,
    pub fuel_used: u64,
    /// Every way the decision differed from the case's expectation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

/// What the gate found; kept with the version, accepted or rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateReport {
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<CaseResult>,
}

impl GateReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Failed)
    }

    /// The failed checks and cases, one line each, for messages.
    pub fn failures(&self) -> Vec<String> {
        let checks = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .filter(|c| c.check != CheckName::Cases || self.cases.is_empty())
            .map(|c| {
                format!(
                    "{}: {}",
                    c.check.as_str(),
                    c.detail.as_deref().unwrap_or("failed")
                )
            });
        let cases = self
            .cases
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("case `{}`: {}", c.name, c.failures.join("; ")));
        checks.chain(cases).collect()
    }
}

/// What passed the gate: the loaded policy and what it said of itself.
pub struct Admitted {
    pub policy: Policy,
    pub info: PolicyInfo,
}

/// Runs the gate. Blocking (compiles, runs cases): call it off the async
/// workers.
pub fn run(runtime: &Runtime, wasm: &[u8], cases: Option<&str>) -> (GateReport, Option<Admitted>) {
    let mut report = GateReport::default();
    let policy = match runtime.load(wasm) {
        Ok(policy) => policy,
        Err(error) => {
            let failed = CheckName::of(&error);
            let mut reached = true;
            for check in CheckName::ORDER {
                let status = if check == failed {
                    reached = false;
                    CheckStatus::Failed
                } else if reached {
                    CheckStatus::Passed
                } else {
                    CheckStatus::Skipped
                };
                let detail = (check == failed).then(|| error.to_string());
                report.checks.push(Check {
                    check,
                    status,
                    detail,
                });
            }
            return (report, None);
        }
    };
    for check in CheckName::ORDER
        .into_iter()
        .filter(|c| *c != CheckName::Cases)
    {
        report.checks.push(Check {
            check,
            status: CheckStatus::Passed,
            detail: None,
        });
    }
    let cases_check = match cases {
        None => Check {
            check: CheckName::Cases,
            status: CheckStatus::Skipped,
            detail: Some("no cases attached".into()),
        },
        Some(text) => run_cases(&policy, text, &mut report.cases),
    };
    report.checks.push(cases_check);
    let admitted = report.passed().then(|| Admitted {
        info: policy.info().clone(),
        policy,
    });
    (report, admitted)
}

fn run_cases(policy: &Policy, text: &str, results: &mut Vec<CaseResult>) -> Check {
    let failed = |detail: String| Check {
        check: CheckName::Cases,
        status: CheckStatus::Failed,
        detail: Some(detail),
    };
    let file = match CasesFile::parse(text) {
        Ok(file) => file,
        Err(e) => return failed(format!("the cases file does not parse: {e}")),
    };
    if file.cases.is_empty() {
        return failed("the cases file has no [[case]]".into());
    }
    let reports = match file.run(policy) {
        Ok(reports) => reports,
        Err(e) => return failed(e.to_string()),
    };
    for r in reports {
        let (outcome, fuel_used) = match &r.result {
            Ok(d) => (d.outcome.kind().to_owned(), d.fuel_used),
            Err(_) => ("fault".to_owned(), 0),
        };
        results.push(CaseResult {
            passed: r.passed(),
            name: r.name,
            outcome,
            fuel_used,
            failures: r.failures,
        });
    }
    let failing = results.iter().filter(|c| !c.passed).count();
    if failing == 0 {
        Check {
            check: CheckName::Cases,
            status: CheckStatus::Passed,
            detail: Some(format!("{} cases passed", results.len())),
        }
    } else {
        failed(format!("{failing} of {} cases failed", results.len()))
    }
}
