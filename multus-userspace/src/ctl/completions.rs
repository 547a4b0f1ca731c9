//! `multusctl completions <shell>` and `multusctl man [SUBCOMMAND] [--dir DIR]`.

use std::{io::Write, path::PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, CtlError, EXIT_OK};

/// Options of `completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell (bash: `multusctl completions bash > /etc/bash_completion.d/multusctl`).
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Options of `man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Print the page of this subcommand (multusctl-SUBCOMMAND(1)) instead of multusctl(1).
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
    pub subcommand: Option<String>,
    /// Write every page (multusctl.1 and one multusctl-SUBCOMMAND.1 per subcommand) into this
    /// existing directory (`multusctl man --dir /usr/local/share/man/man1`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script.
pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> Result<u8, CtlError> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "multusctl", out);
    out.flush()?;
    Ok(EXIT_OK)
}

/// The command as the man pages describe it: built (so that subcommands are named
/// `multusctl-<name>`), without clap's `help` subcommand, which has no page.
fn man_command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Prints multusctl(1) or a subcommand's page, or writes every page to `--dir`.
pub fn man(args: &ManArgs, out: &mut dyn Write) -> Result<u8, CtlError> {
    let cmd = man_command();
    if let Some(dir) = &args.dir {
        if !dir.is_dir() {
            return Err(CtlError::Missing {
                what: "the directory",
                path: dir.clone(),
                hint: " (from --dir)".into(),
            });
        }
        clap_mangen::generate_to(cmd, dir)?;
        return Ok(EXIT_OK);
    }
    let page = match &args.subcommand {
        None => cmd,
        Some(name) => cmd.find_subcommand(name).cloned().ok_or_else(|| {
            CtlError::NotFound(format!(
                "no subcommand {name:?}: the pages are {}",
                man_command()
                    .get_subcommands()
                    .map(|s| s.get_name().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
    };
    clap_mangen::Man::new(page).render(out)?;
    out.flush()?;
    Ok(EXIT_OK)
}
