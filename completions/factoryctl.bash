_factoryctl_completion() {
    local line="${COMP_LINE:0:COMP_POINT}" word text before candidate
    local -a words
    IFS=$' \t\n' read -r -a words <<< "$line"
    if [[ -z $line || $line == *[[:space:]] ]]; then words+=(""); line+="''"; fi
    word="${words[${#words[@]}-1]}"
    COMPREPLY=()
    while IFS= read -r candidate; do [[ -n $candidate ]] && COMPREPLY+=("$candidate"); done < <(
        env COMP_WORDS="$line" COMP_CWORD=-1 _FACTORYCTL_COMPLETE=complete_bash $1 2>/dev/null
    )
    text="${word##*[$COMP_WORDBREAKS]}"
    before="${word%"$text"}"
    [[ $before == *[@\$] ]] && before="${before%?}"
    [[ -n $before ]] && COMPREPLY=( "${COMPREPLY[@]#"$before"}" )
    return 0
}

complete -o default -F _factoryctl_completion factoryctl
