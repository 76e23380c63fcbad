package app_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
)

// nginxConf is the configuration the README's "Behind a reverse proxy"
// section shows, on private ports: HTTP/1.1 to the node with keep-alive, no
// buffering (or the stream's events would wait in nginx), a short
// proxy_read_timeout that only the node's heartbeats keep the stream past,
// the forwarded headers notifyd honours from a trusted proxy, and TLS with
// HTTP/2 on a second port.
const nginxConf = `worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 512; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;

    upstream notifyd {
        server %[2]s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:%[3]d;
        listen 127.0.0.1:%[4]d ssl http2;
        ssl_certificate %[1]s/cert.pem;
        ssl_certificate_key %[1]s/key.pem;

        location / {
            proxy_pass http://notifyd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout %[5]s;
        }
    }
}
`

// nginx is a private nginx process in front of one node.
type nginx struct {
	httpURL, httpsURL string
	dir               string // its prefix, with cert.pem
}

// startNginx runs Debian's nginx (.ci/run installs it) with nginxConf in a
// temporary prefix, in the foreground, until the test ends.
func startNginx(t *testing.T, upstream string, readTimeout string) *nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("nginx is not installed (apt-get install nginx-light; .ci/run does): %v", err)
		}
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	selfSignedCert(t, dir)
	httpPort, httpsPort := testkit.FreePort(t), testkit.FreePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, upstream, httpPort, httpsPort, readTimeout)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop(os.Interrupt, 10*time.Second) // fast shutdown
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				t.Logf("nginx error.log:\n%s", b)
			}
		}
	})
	n := &nginx{dir: dir, httpURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), httpsURL: fmt.Sprintf("https://127.0.0.1:%d", httpsPort)}
	// Wait until it answers (through to the node's /healthz).
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-proc.Exited():
			err := proc.ExitErr()
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s", err, b)
		default:
		}
		resp, err := http.Get(n.httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not answer within 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness, not a timed assertion
	}
}

// selfSignedCert writes cert.pem and key.pem for 127.0.0.1 into dir with
// openssl, as an operator would for a test setup.
func selfSignedCert(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
		"-keyout", filepath.Join(dir, "key.pem"), "-out", filepath.Join(dir, "cert.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
}

// fromAddr is a client whose connections come from the loopback address ip
// (127.0.0.2, …), so nginx's X-Forwarded-For names a client distinct from
// the proxy itself.
func fromAddr(ip string) *http.Transport {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Transport{DialContext: d.DialContext, DisableCompression: true}
}
