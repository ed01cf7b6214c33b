//! `postflight templates [--json]`: the catalogue of template values.

use serde::Serialize;

use crate::args::JsonArg;
use crate::exit::{self, Failure};
use crate::output;

#[derive(Serialize)]
struct ValueJson {
    name: &'static str,
    placeholder: String,
    description: &'static str,
    sample: &'static str,
}

/// Prints every value with its meaning and a sample.
pub fn run(args: &JsonArg) -> Result<i32, Failure> {
    let catalogue = postflight_template::CATALOGUE;
    if args.json {
        let values: Vec<ValueJson> = catalogue
            .iter()
            .map(|v| ValueJson {
                name: v.name,
                placeholder: format!("##{}##", v.name),
                description: v.description,
                sample: v.sample,
            })
            .collect();
        output::print_json(&values);
        return Ok(exit::OK);
    }
    let mut text = String::new();
    for value in catalogue {
        let sample = value.sample.lines().next().unwrap_or("");
        let more = if value.sample.lines().count() > 1 {
            " ..."
        } else {
            ""
        };
        text.push_str(&format!(
            "##{}##\n    {}\n    e.g. {sample}{more}\n",
            value.name, value.description
        ));
    }
    text.push_str(&format!(
        "\nDefault subject: {}\nNames are case-insensitive. Preview a task's email with `postflight render --task NAME`.\n",
        postflight_template::DEFAULT_SUBJECT
    ));
    output::print(&text);
    Ok(exit::OK)
}
