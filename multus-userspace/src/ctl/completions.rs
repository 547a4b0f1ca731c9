//! `multusctl completions <shell>` and `multusctl man`.

use std::io::Write;

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

/// Prints the completion script.
pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> Result<u8, CtlError> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "multusctl", out);
    out.flush()?;
    Ok(EXIT_OK)
}

/// Prints the man page (`multusctl man > /usr/local/share/man/man1/multusctl.1`).
pub fn man(out: &mut dyn Write) -> Result<u8, CtlError> {
    clap_mangen::Man::new(Cli::command()).render(out)?;
    out.flush()?;
    Ok(EXIT_OK)
}
