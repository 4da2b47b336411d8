# bash completion for dhtctl, the durachord operator tool.
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
