fn main() {
    std::process::exit(nginx_rollout::main());
}
