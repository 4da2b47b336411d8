package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// The scripts ask dhtctl itself what may come next: the app has
// EnableBashCompletion set, so `dhtctl ARGS... --generate-bash-completion`
// prints the candidates (subcommands, or the flags that start with the last
// argument when it begins with "-"). deploy/completion holds copies of both
// scripts, kept equal by a test, for packagers.

// bashCompletion is the bash script. The words before the cursor are taken
// from COMP_LINE split on blanks only, so that HOST:PORT and KEY=VALUE stay
// one argument (bash itself splits COMP_WORDS at ':' and '='). It avoids
// bash 4.3+ features so that macOS's bash 3.2 runs it too.
const bashCompletion = `# bash completion for dhtctl, the durachord operator tool.
#
# Install for every user:  dhtctl completion bash > /etc/bash_completion.d/dhtctl
# or in ~/.bashrc:         source <(dhtctl completion bash)

_dhtctl_complete() {
	local line=${COMP_LINE:0:COMP_POINT}
	local -a words
	read -ra words <<<"$line"
	local n=${#words[@]} prefix=""
	if ((n > 0)) && [[ $line != *[[:space:]] ]]; then
		prefix=${words[n-1]}
		unset "words[n-1]"
		n=$((n - 1))
	fi
	((n > 0)) || return 0
	local cmd=${words[0]}
	[[ $cmd == "~/"* ]] && cmd=$HOME/${cmd#"~/"}
	local out
	if [[ $prefix == -* ]]; then
		out=$("$cmd" "${words[@]:1}" "$prefix" --generate-bash-completion 2>/dev/null)
	else
		out=$("$cmd" "${words[@]:1}" --generate-bash-completion 2>/dev/null)
	fi
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$out" -- "$prefix"))
	return 0
}

complete -o bashdefault -o default -F _dhtctl_complete dhtctl
`

// zshCompletion is the zsh script. With $0 set to "zsh" in its environment
// dhtctl prints "name:usage" for subcommands, which _describe shows.
const zshCompletion = `#compdef dhtctl
# zsh completion for dhtctl, the durachord operator tool.
#
# Install: dhtctl completion zsh > "${fpath[1]}/_dhtctl"   (then start a new zsh)
# or in ~/.zshrc, after compinit:   source <(dhtctl completion zsh)

_dhtctl() {
	local -a opts args
	local cur=${(Q)words[CURRENT]}
	args=("${(@Q)words[2,CURRENT-1]}")
	if [[ $cur == -* ]]; then
		opts=("${(@f)$(env 0=zsh "${(Q)words[1]}" "${args[@]}" "$cur" --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(env 0=zsh "${(Q)words[1]}" "${args[@]}" --generate-bash-completion 2>/dev/null)}")
	fi
	if [[ -n ${opts[1]} ]]; then
		_describe 'dhtctl' opts
	else
		_files
	fi
}

if [[ ${funcstack[1]} == _dhtctl ]]; then
	_dhtctl "$@"
else
	compdef _dhtctl dhtctl
fi
`

// completionScript returns the completion script for shell.
func completionScript(shell string) (string, bool) {
	switch shell {
	case "bash":
		return bashCompletion, true
	case "zsh":
		return zshCompletion, true
	}
	return "", false
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash or zsh",
		UsageText: "dhtctl completion bash|zsh",
		Description: `Prints a script that completes dhtctl's commands and flags in the shell.

bash, for every user:  dhtctl completion bash > /etc/bash_completion.d/dhtctl
bash, in ~/.bashrc:    source <(dhtctl completion bash)
zsh:                   dhtctl completion zsh > "${fpath[1]}/_dhtctl"
                       (or in ~/.zshrc, after compinit: source <(dhtctl completion zsh))

The same scripts are in the source tree under deploy/completion.`,
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				fmt.Fprintln(c.App.Writer, "bash")
				fmt.Fprintln(c.App.Writer, "zsh")
			}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return failf("completion: want one shell, bash or zsh; have %d arguments", c.NArg())
			}
			script, ok := completionScript(c.Args().First())
			if !ok {
				return failf("completion: unknown shell %q: want bash or zsh", c.Args().First())
			}
			_, err := io.WriteString(c.App.Writer, script)
			return err
		},
	}
}
