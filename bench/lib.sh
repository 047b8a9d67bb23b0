# Shell functions the benchmark scripts share (sourced, not run). They expect $W (the run's work
# directory) and the array PIDS (processes the script's cleanup stops) to exist.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits up to 10 s until something listens on 127.0.0.1:$1; exits the script otherwise.
wait_port() {
  for _ in $(seq 100); do
    python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))' "$1" \
      && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): nothing listens on port $1" >&2; exit 1
}

# Starts nginx (its own config in $W, not a daemon, its pid in PIDS) serving directory $1 as a static
# binary cache; sets NGINX_PORT.
start_nginx() {
  NGINX_PORT="$(free_port)"
  mkdir -p "$W/nginx-tmp"
  cat > "$W/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $W/nginx-tmp;
  proxy_temp_path $W/nginx-tmp;
  fastcgi_temp_path $W/nginx-tmp;
  uwsgi_temp_path $W/nginx-tmp;
  scgi_temp_path $W/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $1;
  }
}
EOF
  nginx -c "$W/nginx.conf" -p "$W" &
  PIDS+=($!)
  wait_port "$NGINX_PORT"
}

# attestd with $W/node.toml (its log appended to $W/attestd.log), waiting for both ports; sets
# ATTESTD_PID. stop_attestd ends it (SIGTERM) and waits.
start_attestd() {
  "$ATTESTD" --config "$W/node.toml" >> "$W/attestd.log" 2>&1 &
  ATTESTD_PID=$!
  PIDS+=("$ATTESTD_PID")
  wait_port "$GRPC_PORT"; wait_port "$HTTP_PORT"
}
stop_attestd() { kill "$ATTESTD_PID"; wait "$ATTESTD_PID" 2>/dev/null || true; }
