#compdef factoryctl

_factoryctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _FACTORYCTL_COMPLETE=complete_zsh factoryctl)
}

compdef _factoryctl_completion factoryctl
