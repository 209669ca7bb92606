//! The definitions of the nine step-workflow tools (data only; the behaviour is the shared
//! engine in `workflow`): their own fields (seed inventory §2.3), the guidance given to the
//! agent by phase, and the expert prompt of the final step.

use super::workflow::{Actions, WorkflowDef};
use serde_json::{json, Value};

const SEVERITY_FILTER: &str = "Lowest severity to report: critical, high, medium, low or all (default all).";

fn severity_filter() -> Value {
    json!({ "type": "string", "enum": ["critical", "high", "medium", "low", "all"], "description": SEVERITY_FILTER })
}

fn strings(max_items: u32, description: &str) -> Value {
    json!({ "type": "array", "maxItems": max_items, "items": { "type": "string", "minLength": 1, "maxLength": 500 },
            "description": description })
}

fn text(max: u32, description: &str) -> Value {
    json!({ "type": "string", "maxLength": max, "description": description })
}

fn choice(values: &[&str], description: &str) -> Value {
    json!({ "type": "string", "enum": values, "description": description })
}

fn no_fields() -> Value {
    json!({})
}

/// thinkdeep.
pub static THINKDEEP: WorkflowDef = WorkflowDef {
    name: "thinkdeep",
    title: "Think deep",
    description: "Hypothesis-driven deep reasoning on a hard problem (architecture decisions, complex bugs, \
                  trade-offs): you reason in steps, an expert model challenges and extends the result.",
    fields: || {
        json!({
            "problem_context": text(20000, "Background: constraints, goals, what was tried and ruled out."),
            "focus_areas": strings(20, "Aspects to concentrate on, e.g. architecture, performance, security, scalability."),
        })
    },
    file_fields: &[],
    expert_role: "You are a principal engineer and rigorous thinking partner.",
    expert_task: "Stress-test the reasoning: challenge assumptions, point out gaps and blind spots, weigh the \
                  alternatives with their trade-offs, and give a clear recommendation with the risks that remain.",
    deliverable: "the conclusion, the reasoning behind it, the alternatives considered and the remaining risks",
    actions: Actions {
        first: &[
            "State the problem precisely, with its constraints and what success looks like",
            "Read the code and documents that bear on it; list your first hypotheses",
            "Note what evidence would confirm or refute each hypothesis",
        ],
        investigating: &[
            "Gather the evidence for and against the current hypothesis",
            "Look for assumptions you have not verified and verify them",
            "Consider at least one alternative approach and its trade-offs",
        ],
        confirming: &[
            "Check the conclusion against every constraint you listed",
            "Look for the strongest counter-argument and answer it",
            "Summarise the conclusion, its evidence and the remaining risks in findings",
        ],
    },
};

/// analyze.
pub static ANALYZE: WorkflowDef = WorkflowDef {
    name: "analyze",
    title: "Analyze code",
    description: "Code and architecture analysis (architecture, performance, security, quality): you examine \
                  the code in steps, an expert model validates and extends the assessment.",
    fields: || {
        json!({
            "analysis_type": choice(&["architecture", "performance", "security", "quality", "general"],
                                    "Kind of analysis (default general)."),
            "output_format": choice(&["summary", "detailed", "actionable"],
                                    "Shape of the final report (default detailed)."),
        })
    },
    file_fields: &[],
    expert_role: "You are a senior software architect reviewing an analysis of a codebase.",
    expert_task: "Assess the architecture, patterns, scalability, maintainability and the points the analysis \
                  type asks for; confirm or correct the findings; give prioritised, strategic recommendations \
                  in the requested output format.",
    deliverable: "the assessment: strengths, the main problems ranked by impact, and recommendations",
    actions: Actions {
        first: &[
            "Map the structure: entry points, modules, layers and their dependencies",
            "Read the central files for the chosen analysis type",
            "List the questions the analysis must answer",
        ],
        investigating: &[
            "Trace the important flows through the code",
            "Note patterns, anti-patterns and hot spots with file and symbol names",
            "Record problems in issues_found with a severity",
        ],
        confirming: &[
            "Verify each finding against the code once more",
            "Rank the findings by impact and effort",
            "Write the recommendations you will present",
        ],
    },
};

/// debug.
pub static DEBUG: WorkflowDef = WorkflowDef {
    name: "debug",
    title: "Debug",
    description: "Root-cause investigation of a bug, failure or unexpected behaviour: you investigate and \
                  refine a hypothesis step by step, an expert model validates the root cause and the fix.",
    fields: no_fields,
    file_fields: &[],
    expert_role: "You are an expert debugger validating a root-cause investigation.",
    expert_task: "Decide whether the hypothesis explains every symptom; if not, give the most likely root cause \
                  with evidence from the code. Propose the minimal fix and how to verify it, and mention \
                  related places that may break the same way.",
    deliverable: "the root cause with its evidence, the minimal fix and how to verify it",
    actions: Actions {
        first: &[
            "Reproduce or restate the symptoms exactly (errors, logs, inputs, environment)",
            "Find the code paths involved and read them",
            "Form a first hypothesis and note how to test it",
        ],
        investigating: &[
            "Test the current hypothesis against the code, logs or a reproduction",
            "Follow the data and control flow to where behaviour diverges from expectations",
            "Refine or replace the hypothesis; use backtrack_from_step if a path was wrong",
        ],
        confirming: &[
            "Confirm the root cause explains every symptom",
            "Design the minimal fix and how to verify it",
            "Check for other places with the same defect",
        ],
    },
};

/// codereview.
pub static CODEREVIEW: WorkflowDef = WorkflowDef {
    name: "codereview",
    title: "Code review",
    description: "Systematic code review (quality, security, performance, architecture): you review the code \
                  in steps and record issues with severities, an expert model validates and completes the review.",
    fields: || {
        json!({
            "review_type": choice(&["full", "security", "performance", "quick"], "Kind of review (default full)."),
            "focus_on": text(2000, "Specific aspects or concerns to focus on."),
            "standards": text(5000, "Coding standards or conventions to enforce."),
            "severity_filter": severity_filter(),
        })
    },
    file_fields: &[],
    expert_role: "You are a meticulous senior code reviewer.",
    expert_task: "Validate the issues found (adjust severities where needed), add the important issues that were \
                  missed, and give a concrete fix for each; respect the review type, focus and severity filter.",
    deliverable: "the issues by severity with their fixes, and the overall assessment",
    actions: Actions {
        first: &[
            "Read the code under review and understand its purpose and context",
            "Note the review type, focus and standards you apply",
            "List the areas to examine (correctness, security, performance, maintainability)",
        ],
        investigating: &[
            "Examine each area; record every problem in issues_found with a severity",
            "Check error handling, edge cases, input validation and resource handling",
            "Note good patterns too, so the review is balanced",
        ],
        confirming: &[
            "Re-check each issue and its severity against the code",
            "Make sure each issue has a concrete fix",
            "Summarise the overall quality in findings",
        ],
    },
};

/// precommit.
pub static PRECOMMIT: WorkflowDef = WorkflowDef {
    name: "precommit",
    title: "Pre-commit validation",
    description: "Validation of pending git changes before a commit: you inspect the diff (you run git; the \
                  server does not) and record issues, an expert model validates the changes are ready.",
    fields: || {
        json!({
            "path": text(4096, "Root of the git repository the changes are in."),
            "compare_to": text(200, "Git ref (branch, tag, commit) to compare against instead of the working tree changes."),
            "include_staged": { "type": "boolean", "description": "Include staged changes (default true)." },
            "include_unstaged": { "type": "boolean", "description": "Include unstaged changes (default true)." },
            "focus_on": text(2000, "Specific aspects to focus on."),
            "severity_filter": severity_filter(),
        })
    },
    file_fields: &[],
    expert_role: "You are a senior engineer doing the final review of a change before it is committed.",
    expert_task: "Check the change for bugs, regressions, security problems, incomplete work (TODOs, debug code, \
                  missing tests or docs) and whether it does what it claims; say clearly whether it is ready to \
                  commit and what must change first.",
    deliverable: "whether the change is ready to commit, the blocking issues and the recommended fixes",
    actions: Actions {
        first: &[
            "Run git status and git diff (staged, unstaged or against compare_to) in the repository",
            "List the changed files and the intent of the change",
            "Put the changed files in relevant_files",
        ],
        investigating: &[
            "Read each change in context; record problems in issues_found with a severity",
            "Check for leftover debug code, secrets, missing tests and missing docs",
            "Check the change against its stated intent",
        ],
        confirming: &[
            "Re-check the blocking issues",
            "Decide whether the change is ready to commit",
            "Summarise the verdict in findings",
        ],
    },
};

/// refactor.
pub static REFACTOR: WorkflowDef = WorkflowDef {
    name: "refactor",
    title: "Refactor",
    description: "Refactoring opportunities (code smells, decomposition, modernisation, organisation): you \
                  examine the code in steps, an expert model validates and prioritises the refactorings.",
    fields: || {
        json!({
            "refactor_type": choice(&["codesmells", "decompose", "modernize", "organization"],
                                    "Kind of refactoring to look for (default codesmells)."),
            "focus_areas": strings(20, "Aspects to concentrate on, e.g. performance, readability, maintainability."),
            "style_guide_examples": { "type": "array", "maxItems": 10,
                                      "items": { "type": "string", "minLength": 1, "maxLength": 4096 },
                                      "description": "Files showing the target style; the server reads them (allowed roots only) for the expert." },
        })
    },
    file_fields: &["style_guide_examples"],
    expert_role: "You are a refactoring expert who values small, safe, behaviour-preserving steps.",
    expert_task: "Validate the refactoring opportunities, add important ones that were missed, and order them by \
                  value and risk; for each give the concrete change, the files involved and how to keep \
                  behaviour unchanged.",
    deliverable: "the refactorings ordered by value and risk, each with its concrete steps",
    actions: Actions {
        first: &[
            "Read the code in scope and note its size and structure",
            "Identify candidates of the requested refactoring type",
            "Note the style and conventions the code should follow",
        ],
        investigating: &[
            "Examine each candidate; record it in issues_found with a severity reflecting its value",
            "Check how callers and tests would be affected",
            "Look for duplicated logic and oversized functions, types or files",
        ],
        confirming: &[
            "Order the refactorings by value and risk",
            "Make sure each one preserves behaviour and has a verification step",
            "Summarise the plan in findings",
        ],
    },
};

/// secaudit.
pub static SECAUDIT: WorkflowDef = WorkflowDef {
    name: "secaudit",
    title: "Security audit",
    description: "Security audit (OWASP Top 10, compliance, infrastructure, dependencies): you examine the \
                  code in steps and record vulnerabilities, an expert model validates and completes the audit.",
    fields: || {
        json!({
            "security_scope": text(5000, "What is in scope: application type, stack, entry points, data handled."),
            "threat_level": choice(&["low", "medium", "high", "critical"], "Threat level of the context (default medium)."),
            "compliance_requirements": strings(20, "Frameworks to check against, e.g. SOC2, PCI DSS, HIPAA, GDPR."),
            "audit_focus": choice(&["owasp", "compliance", "infrastructure", "dependencies", "comprehensive"],
                                  "Focus of the audit (default comprehensive)."),
            "severity_filter": severity_filter(),
        })
    },
    file_fields: &[],
    expert_role: "You are a senior application security engineer.",
    expert_task: "Validate each vulnerability (exploitability, impact, severity), add the ones that were missed \
                  for the audit focus and threat level, check the compliance requirements, and give a concrete \
                  remediation for each finding, most urgent first.",
    deliverable: "the vulnerabilities by severity with remediations, and the compliance gaps",
    actions: Actions {
        first: &[
            "Map the attack surface: entry points, authentication, data flows, secrets, dependencies",
            "Note the scope, threat level and compliance requirements",
            "List the vulnerability classes to check for the audit focus",
        ],
        investigating: &[
            "Check input validation, authentication, authorisation, crypto and secret handling",
            "Record each vulnerability in issues_found with a severity and its location",
            "Check dependencies and configuration for known weaknesses",
        ],
        confirming: &[
            "Verify each vulnerability is real and rate its severity",
            "Give each one a concrete remediation",
            "Summarise the security posture in findings",
        ],
    },
};

/// testgen.
pub static TESTGEN: WorkflowDef = WorkflowDef {
    name: "testgen",
    title: "Test generation",
    description: "Test generation for specific code: you analyse the code paths, edge cases and failure modes \
                  in steps, an expert model designs the test suite.",
    fields: no_fields,
    file_fields: &[],
    expert_role: "You are a test engineer who writes focused, deterministic tests.",
    expert_task: "Design the tests: the scenarios (happy paths, edge cases, failure modes, boundaries) with the \
                  reason for each, written as test code in the project's framework and conventions.",
    deliverable: "the test scenarios and the test code to add",
    actions: Actions {
        first: &[
            "Read the code to test and the existing tests and framework",
            "List the public behaviour and the code paths",
            "Note the conventions the tests must follow",
        ],
        investigating: &[
            "Find edge cases, error paths and boundary conditions",
            "Note dependencies to fake or isolate",
            "Record untested risky behaviour in findings",
        ],
        confirming: &[
            "Check the scenarios cover every important path",
            "Make sure each test would be deterministic",
            "Summarise the planned suite in findings",
        ],
    },
};

/// tracer.
pub static TRACER: WorkflowDef = WorkflowDef {
    name: "tracer",
    title: "Code tracer",
    description: "Call-flow and dependency tracing: precision mode follows the execution of a method or \
                  function, dependencies mode maps structural relationships; you trace in steps, an expert \
                  model checks and completes the trace.",
    fields: || {
        json!({
            "trace_mode": choice(&["precision", "dependencies", "ask"],
                                 "precision: execution flow of a function; dependencies: structural relationships; ask: decide with the user first (default ask)."),
            "target_description": text(5000, "What to trace and why, e.g. a method name and the question to answer."),
        })
    },
    file_fields: &[],
    expert_role: "You are an expert in reading and tracing code.",
    expert_task: "Check the trace for missing or wrong calls and dependencies and complete it; present it as a \
                  call-flow (precision) or dependency map (dependencies) with file and symbol names.",
    deliverable: "the call flow or dependency map with file and symbol names",
    actions: Actions {
        first: &[
            "If trace_mode is ask, agree the mode (precision or dependencies) with the user first",
            "Locate the target symbol and its definition",
            "List its direct callers and callees or dependencies",
        ],
        investigating: &[
            "Follow each call or dependency one level further",
            "Record each element in relevant_context with its file",
            "Note conditional branches and dynamic dispatch",
        ],
        confirming: &[
            "Check the trace for gaps",
            "Arrange it as a flow or a dependency map",
            "Summarise it in findings",
        ],
    },
};

/// All nine, in listing order.
pub fn all() -> [&'static WorkflowDef; 9] {
    [&THINKDEEP, &ANALYZE, &DEBUG, &CODEREVIEW, &PRECOMMIT, &REFACTOR, &SECAUDIT, &TESTGEN, &TRACER]
}
