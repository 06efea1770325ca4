# bash completion for dialoguectl: commands, flags, files, and (asking the
# server named on the line or in $DIALOGUE_SERVER) room and event names.
# Installed by `ninja install` as share/bash-completion/completions/dialoguectl;
# from a source tree: source cli/dialoguectl.bash

# The server's room ids or event names ("rooms" or "schema"), asked with the
# connection flags already typed. Quiet and bounded: nothing on failure.
_dialoguectl_ask() {
    local what=$1
    shift
    command "${_dialoguectl_prog:-dialoguectl}" "$@" --connect-timeout 2 "$what" 2>/dev/null |
        awk 'NR > 1 && NF { print $1 }'
}

# Bash splits words at ":" (COMP_WORDBREAKS): event names such as
# metrics:update come as "metrics" ":" "update". Joins them again into
# words/cword, with no need for the bash-completion package.
_dialoguectl_words() {
    words=()
    cword=0
    local i w
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if [ ${#words[@]} -gt 0 ] && { [ "$w" = ":" ] || [[ ${words[-1]} == *: ]]; } &&
            [ "$i" -le "$COMP_CWORD" ]; then
            words[-1]+=$w
        else
            words+=("$w")
        fi
        [ "$i" -eq "$COMP_CWORD" ] && cword=$((${#words[@]} - 1))
    done
}

# COMPREPLY for cur from the list of words in $1; where bash split cur at a
# ":", each answer loses the part before it, as bash will put it back.
_dialoguectl_reply() {
    mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local pre=${cur%"${cur##*:}"} i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$pre"}
        done
    fi
}

_dialoguectl() {
    local cur prev words cword
    _dialoguectl_words
    cur=${words[cword]}
    prev=${words[cword - 1]}
    _dialoguectl_prog=${words[0]}

    local globals="--server --ca --token --cert --key --connect-timeout --verbose --version --help"
    local commands="ping rooms schema sub history trigger dashboard token bench help"
    # The command word, and the global flags before it (kept to ask the
    # same server).
    local i=1 cmd='' cmd_at=0
    local -a conn=()
    while [ "$i" -lt "$cword" ]; do
        case ${words[i]} in
            --server|--ca|--token|--cert|--key|--connect-timeout)
                conn+=("${words[i]}" "${words[i + 1]}")
                i=$((i + 2))
                continue ;;
            --server=*|--ca=*|--token=*|--cert=*|--key=*)
                conn+=("${words[i]}") ;;
            -*) ;;
            *) cmd=${words[i]}; cmd_at=$i; break ;;
        esac
        i=$((i + 1))
    done

    case $prev in
        --ca|--cert|--key|--schema|--secret-file)
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return ;;
        --server|--token|--connect-timeout|--count|--timeout|--limit|--since|--format|--sub|--role|--ttl|--aud|--iss|--kid)
            return ;;
        --describe)
            _dialoguectl_reply "$(_dialoguectl_ask schema "${conn[@]}")"
            return ;;
    esac

    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$globals" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return
    fi

    local flags=
    case $cmd in
        ping) flags="--help" ;;
        rooms) flags="--json --members --help" ;;
        schema) flags="--json --describe --help" ;;
        sub) flags="--count --timeout --schema --raw --format --help" ;;
        history) flags="--limit --since --json --schema --help" ;;
        trigger) flags="--schema --raw --base64 --help" ;;
        dashboard) flags="--count --help" ;;
        token) flags="--secret-file --sub --role --ttl --aud --iss --kid --help" ;;
        *) return ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
        return
    fi
    # Operands: count those after the command (flag values skipped).
    local n=0
    for ((i = cmd_at + 1; i < cword; i++)); do
        case ${words[i]} in
            --count|--timeout|--schema|--format|--limit|--since|--describe) i=$((i + 1)) ;;
            -*) ;;
            *) n=$((n + 1)) ;;
        esac
    done
    case $cmd:$n in
        sub:0|history:0|trigger:0|dashboard:0)
            _dialoguectl_reply "$(_dialoguectl_ask rooms "${conn[@]}")" ;;
        sub:*|history:1|trigger:1)
            _dialoguectl_reply "$(_dialoguectl_ask schema "${conn[@]}")" ;;
        trigger:2)
            mapfile -t COMPREPLY < <(compgen -W "-" -- "$cur") ;;
    esac
}
complete -F _dialoguectl dialoguectl
