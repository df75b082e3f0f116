#compdef factoryctl

_factoryctl_completion() {
  eval "$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _FACTORYCTL_COMPLETE=complete_zsh factoryctl 2>/dev/null)"
}

compdef _factoryctl_completion factoryctl
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from $fpath by the TAB being completed: answer it now
  _factoryctl_completion "$@"
fi
