use super::*;

/// A few short values, so expected renderings stay readable.
fn values() -> Values {
    let mut values = Values::new();
    values
        .set("Task Name", "backup")
        .set("Exit Status", "Failed")
        .set("Exit Code", "2")
        .set("Computer Name", "db1");
    values
}

/// Parses `input`, renders it with [`values`] and compares.
#[track_caller]
fn check(input: &str, expected: &str) {
    let template =
        Template::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse, but: {e}"));
    assert_eq!(template.render(&values()), expected, "rendering {input:?}");
}

/// Parses `input`, expecting an unknown-name error with these fields.
#[track_caller]
fn check_error(
    input: &str,
    found: &str,
    line: usize,
    column: usize,
    suggestion: Option<&'static str>,
) {
    let error = Template::parse(input).expect_err(input);
    let expected = TemplateError {
        found: found.to_string(),
        line,
        column,
        suggestion,
    };
    assert_eq!(error, expected, "parsing {input:?}");
}

#[test]
fn every_catalogue_value_renders() {
    let sample = Values::sample();
    for info in CATALOGUE {
        let template = Template::parse(&format!("<##{}##>", info.name)).unwrap();
        assert_eq!(
            template.render(&sample),
            format!("<{}>", info.sample),
            "{}",
            info.name
        );
        assert_eq!(sample.get(info.name), Some(info.sample));
    }
}

#[test]
fn catalogue_is_well_formed() {
    let expected = [
        "Task Name",
        "Exit Status",
        "Exit Code",
        "Exit Reason",
        "Computer Name",
        "User Name",
        "Start Time",
        "End Time",
        "Elapsed Time",
        "Command",
        "Output",
        "Error Output",
        "Output Size",
        "Previous Status",
        "Failure Count",
        "Working Directory",
    ];
    let names: Vec<_> = CATALOGUE.iter().map(|info| info.name).collect();
    assert_eq!(names, expected);
    for info in CATALOGUE {
        assert!(!info.description.is_empty(), "{}", info.name);
        assert!(!info.sample.is_empty(), "{}", info.name);
        assert!(
            info.name
                .split(' ')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic())),
            "{}",
            info.name
        );
    }
}

#[test]
fn names_ignore_case_and_extra_spaces() {
    check("##Task Name##", "backup");
    check("##task name##", "backup");
    check("##TASK NAME##", "backup");
    check("##tAsK nAmE##", "backup");
    check("## Task  Name ##", "backup");
    check("##   task   name##", "backup");
    check("##exit code##/##EXIT STATUS##", "2/Failed");
}

#[test]
fn references_in_text() {
    check("", "");
    check("plain text", "plain text");
    check(
        "##Computer Name##: ##Task Name##: ##Exit Status##",
        "db1: backup: Failed",
    );
    check("##Task Name####Exit Code##", "backup2");
    check("a\n##Task Name##\nb", "a\nbackup\nb");
    check("é ##Task Name## ü", "é backup ü");
}

#[test]
fn other_hashes_are_literal() {
    check("#", "#");
    check("# comment", "# comment");
    check("##", "##");
    check("###", "###");
    check("####", "####");
    check("#####", "#####");
    check("## not closed", "## not closed");
    check("##Task Name", "##Task Name");
    check("Task Name##", "Task Name##");
    check("##Task Name#", "##Task Name#");
    check("#Task Name#", "#Task Name#");
    // A name cannot span lines or hold other punctuation.
    check("##Task\nName##", "##Task\nName##");
    check("##Task.Name##", "##Task.Name##");
    check("##Task\tName##", "##Task\tName##");
    // Names need a letter: separators and numbers stay as they are.
    check("## ##", "## ##");
    check("##  ##  ##", "##  ##  ##");
    check("##-----##", "##-----##");
    check("####-####", "####-####");
    check("##42##", "##42##");
    check("##_##", "##_##");
    // Extra hashes around a reference stay.
    check("###Task Name###", "#backup#");
    check("# ##Task Name## #", "# backup #");
    check("issue #12: ##Exit Code##", "issue #12: 2");
    // Longer than 64 characters: not a reference.
    let long = format!("##{}##", "a".repeat(65));
    check(&long, &long);
}

#[test]
fn unset_values_render_empty() {
    let template = Template::parse("[##Output##] [##Task Name##]").unwrap();
    assert_eq!(template.render(&Values::new()), "[] []");
    assert_eq!(template.render(&values()), "[] [backup]");
}

#[test]
fn values_are_rendered_verbatim() {
    let mut values = Values::new();
    values
        .set("Task Name", "evil\r\nBcc: someone@example.com")
        .set("Output", "line 1\nline 2\r\n##Task Name##\n");
    let template = Template::parse("##Task Name##|##Output##").unwrap();
    assert_eq!(
        template.render(&values),
        "evil\r\nBcc: someone@example.com|line 1\nline 2\r\n##Task Name##\n"
    );
}

#[test]
fn values_set_and_get() {
    let mut values = Values::new();
    assert_eq!(values.get("Task Name"), None);
    values
        .set("task  name", "a")
        .set(" Exit Code ", String::from("1"));
    assert_eq!(values.get("Task Name"), Some("a"));
    assert_eq!(values.get("TASK NAME"), Some("a"));
    assert_eq!(values.get("exit code"), Some("1"));
    values.set("Task Name", "b");
    assert_eq!(values.get("task name"), Some("b"));
    assert_eq!(values.get("No Such Value"), None);
}

#[test]
#[should_panic(expected = "is not a template value")]
fn setting_an_unknown_value_panics() {
    Values::new().set("Taks Name", "x");
}

#[test]
fn unknown_names_are_errors_with_suggestions() {
    check_error("##Taks Name##", "Taks Name", 1, 1, Some("Task Name"));
    check_error("##exitcode##", "exitcode", 1, 1, Some("Exit Code"));
    check_error("##Outptu##", "Outptu", 1, 1, Some("Output"));
    check_error("##Computer##", "Computer", 1, 1, Some("Computer Name"));
    check_error("## comand ##", " comand ", 1, 1, Some("Command"));
    check_error("##Exit Stat##", "Exit Stat", 1, 1, Some("Exit Status"));
    check_error("##errors##", "errors", 1, 1, Some("Error Output"));
    check_error("##status##", "status", 1, 1, Some("Exit Status"));
    check_error("##hostname##", "hostname", 1, 1, Some("Computer Name"));
    check_error("##stderr##", "stderr", 1, 1, Some("Error Output"));
    check_error("##duration##", "duration", 1, 1, Some("Elapsed Time"));
    check_error("##xyzzy##", "xyzzy", 1, 1, None);
    check_error("##Hello World##", "Hello World", 1, 1, None);
    check_error("##banana##", "banana", 1, 1, None);
    check_error("##Date##", "Date", 1, 1, None);
    check_error("##a##", "a", 1, 1, None);
}

#[test]
fn error_positions() {
    check_error("Job ##Taks Name##", "Taks Name", 1, 5, Some("Task Name"));
    check_error("a\nb\n  ##Outptu##", "Outptu", 3, 3, Some("Output"));
    check_error(
        "##Task Name## ok\r\nline two\r\nthree: ##Exitcode##",
        "Exitcode",
        3,
        8,
        Some("Exit Code"),
    );
    // Columns count chars, not bytes.
    check_error("é ü ##Outptu##", "Outptu", 1, 5, Some("Output"));
    check_error("日本語 😀##Outptu##", "Outptu", 1, 6, Some("Output"));
    check_error("\n日本語 ##Task Name## ##Nope##", "Nope", 2, 19, None);
    // Literal hashes before the reference count too.
    check_error("## # ##Taks Name##", "Taks Name", 1, 6, Some("Task Name"));
    // The first error is reported.
    check_error("##One## ##Two##", "One", 1, 1, None);
}

#[test]
fn error_messages() {
    let error = Template::parse("Job ##Taks Name##").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown template value ##Taks Name## at line 1, column 5; did you mean ##Task Name##? \
         (run `postflight templates` for the list)"
    );
    let error = Template::parse("\n\n##xyzzy##").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown template value ##xyzzy## at line 3, column 1 \
         (run `postflight templates` for the list)"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(error);
    assert!(boxed.to_string().starts_with("unknown template value"));
}

#[test]
fn defaults_parse_and_read_well() {
    Template::parse(DEFAULT_SUBJECT).unwrap();
    Template::parse(DEFAULT_BODY).unwrap();
    assert_eq!(
        Template::parse(DEFAULT_SUBJECT)
            .unwrap()
            .render(&Values::sample()),
        "db1.example.com: nightly-backup: Failed"
    );

    let body = Template::parse(DEFAULT_BODY)
        .unwrap()
        .render(&Values::sample());
    assert!(body.starts_with("nightly-backup on db1.example.com: Failed\n"));
    assert!(body.contains("Total size: 1.2 MB (1234567 bytes)\n"));
    let output = CATALOGUE
        .iter()
        .find(|i| i.name == "Output")
        .unwrap()
        .sample;
    assert!(body.ends_with(&format!("-\n{output}\n")), "{body}");
    assert!(!body.contains("##"), "{body}");

    // With nothing set, no template syntax leaks through.
    let empty = Template::parse(DEFAULT_BODY)
        .unwrap()
        .render(&Values::new());
    assert!(!empty.contains("##"), "{empty}");
}

#[test]
fn default_body_mentions_the_important_values() {
    for name in [
        "Task Name",
        "Computer Name",
        "Exit Status",
        "Exit Reason",
        "Exit Code",
        "Command",
        "Working Directory",
        "Start Time",
        "End Time",
        "Elapsed Time",
        "Previous Status",
        "Failure Count",
        "User Name",
        "Output Size",
        "Output",
    ] {
        assert!(
            DEFAULT_BODY.contains(&format!("##{name}##")),
            "{name} missing"
        );
    }
}

#[test]
fn notification_with_good_templates() {
    let rendered = render_notification(None, None, &values());
    assert_eq!(rendered.subject, "db1: backup: Failed");
    assert!(rendered.body.starts_with("backup on db1: Failed\n"));
    assert!(rendered.problems.is_empty());

    let rendered = render_notification(
        Some("[##Exit Status##] ##Task Name##"),
        Some("code ##Exit Code##\n"),
        &values(),
    );
    assert_eq!(
        rendered,
        Rendered {
            subject: "[Failed] backup".into(),
            body: "code 2\n".into(),
            problems: vec![],
        }
    );
}

#[test]
fn notification_with_broken_subject() {
    let rendered = render_notification(
        Some("##Taks Name## done"),
        Some("code ##Exit Code##\n"),
        &values(),
    );
    assert_eq!(rendered.subject, "db1: backup: Failed");
    let error = "unknown template value ##Taks Name## at line 1, column 1; did you mean \
                 ##Task Name##? (run `postflight templates` for the list)";
    assert_eq!(
        rendered.problems,
        vec![format!("subject template: {error}")]
    );
    assert_eq!(
        rendered.body,
        format!(
            "Note from postflight: the configured subject template is broken, so the built-in \
             one was used instead: {error}\n\ncode 2\n"
        )
    );
}

#[test]
fn notification_with_broken_body() {
    let rendered = render_notification(
        Some("##Task Name##!"),
        Some("line one\n##Outptu##\n"),
        &values(),
    );
    assert_eq!(rendered.subject, "backup!");
    let error = "unknown template value ##Outptu## at line 2, column 1; did you mean \
                 ##Output##? (run `postflight templates` for the list)";
    assert_eq!(rendered.problems, vec![format!("body template: {error}")]);
    let default_body = Template::parse(DEFAULT_BODY).unwrap().render(&values());
    assert_eq!(
        rendered.body,
        format!(
            "Note from postflight: the configured body template is broken, so the built-in \
             one was used instead: {error}\n\n{default_body}"
        )
    );
}

#[test]
fn notification_with_both_broken() {
    let rendered = render_notification(Some("##Nope##"), Some("##Outptu##"), &values());
    assert_eq!(rendered.subject, "db1: backup: Failed");
    assert_eq!(rendered.problems.len(), 2);
    assert!(rendered.problems[0].starts_with("subject template: "));
    assert!(rendered.problems[1].starts_with("body template: "));
    let mut lines = rendered.body.lines();
    assert!(lines.next().unwrap().contains("subject template is broken"));
    assert!(lines.next().unwrap().contains("body template is broken"));
    assert_eq!(lines.next(), Some(""));
    assert_eq!(lines.next(), Some("backup on db1: Failed"));
}

#[test]
fn notification_keeps_newlines_in_values() {
    let mut values = values();
    values.set("Task Name", "two\r\nlines");
    let rendered = render_notification(None, Some("##Task Name##"), &values);
    assert_eq!(rendered.subject, "db1: two\r\nlines: Failed");
    assert_eq!(rendered.body, "two\r\nlines");
}
