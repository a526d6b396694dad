/* Closed-loop load generator for the geworker benchmark (built by `python -m bench`).
 *
 * One parent forks P generator processes; each runs an epoll loop over its
 * share of the connections, from its own source address in 127.0.0.0/8.
 * Modes:
 *   text       newline echo: N lines of SIZE bytes (newline included) per batch
 *   frame      frame echo: N frames of SIZE bytes (4-byte length header included)
 *   ws         WebSocket echo: N masked text frames of SIZE payload bytes
 *   idle       open C connections and hold them until stdin says "quit"
 *   idlews     the same after a WebSocket handshake
 *   broadcast  hold C WebSocket connections, send one "broadcast" message on
 *              an extra connection and time until every connection got it
 * With -E (idlews, broadcast) each connection must answer one echo to count as ready.
 * Every echo is compared byte for byte with what was sent; a mismatch,
 * an early close or a connect failure counts as an error.
 *
 * Output (stdout, one line each): READY <connected> <failed>, then
 * WINDOW <t0> <t1> (CLOCK_MONOTONIC seconds, the measured interval), then
 * RESULT key=value ...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAXP 64
#define NB 40960 /* histogram buckets, see bucket() */

enum { M_TEXT, M_FRAME, M_WS, M_IDLE, M_IDLEWS, M_BCAST };
enum { S_CONNECTING, S_HANDSHAKE, S_ECHO, S_READY, S_DEAD };

struct result {
    uint64_t msgs, errors, conn_errors, connected, received;
    double first_recv, last_recv, cpu; /* cpu: own utime + stime in the measured window */
    uint64_t hist[NB];
};

struct shared {
    volatile int ready, go, quit;
    volatile double t0, t1;
    struct result res[MAXP];
};

struct conn {
    int fd, state;
    uint32_t id;
    uint64_t seq;
    char *out, *expect;
    size_t out_len, out_off, exp_len, got;
    double sent_at;
    char hs[1024];
    size_t hs_len;
};

static int mode, port = 0, nconns = 100, nprocs = 4, pipeline = 1, size = 64, src_base = 10;
static int nsrc = 0, echo_check = 0;
static const char CHECK_FRAME[] = "\x81\x85\x00\x00\x00\x00" "check", CHECK_ECHO[] = "\x81\x05" "check";
static double duration = 5, warmup = 1, connect_timeout = 20;
static const char *host = "127.0.0.1";
static struct shared *sh;
static int ws_mode;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_time(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Log-linear buckets of microseconds: exact below 2048, then 1024 sub-buckets per power of two. */
static int bucket(uint64_t us) {
    if (us < 2048) return (int)us;
    int k = 63 - __builtin_clzll(us), shift = k - 10;
    int idx = 1024 * shift + (int)(us >> shift);
    return idx < NB ? idx : NB - 1;
}

static double bucket_value(int idx) {
    if (idx < 2048) return idx;
    int shift = idx / 1024 - 1;
    return (double)((uint64_t)(idx - 1024 * shift) << shift);
}

static const char WS_REQUEST[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* Fill the next batch of `pipeline` messages for c: the bytes to send and the echo expected. */
static void make_batch(struct conn *c) {
    char payload[65536];
    size_t in_size = mode == M_WS ? (size_t)size + (size < 126 ? 2 : 4) : (size_t)size;
    size_t out_size = mode == M_WS ? (size_t)size + (size < 126 ? 6 : 8) : (size_t)size;
    char *o = c->out, *e = c->expect;
    for (int i = 0; i < pipeline; i++) {
        int plen = mode == M_FRAME ? size - 4 : mode == M_TEXT ? size - 1 : size;
        int n = snprintf(payload, sizeof payload, "%08x:%016llx:", c->id,
                         (unsigned long long)c->seq++);
        for (int j = n; j < plen; j++) payload[j] = 'a' + (j % 26);
        if (mode == M_TEXT) {
            memcpy(o, payload, plen);
            o[plen] = '\n';
            memcpy(e, o, size);
        } else if (mode == M_FRAME) {
            uint32_t total = htonl((uint32_t)size);
            memcpy(o, &total, 4);
            memcpy(o + 4, payload, plen);
            memcpy(e, o, size);
        } else {
            unsigned char mask[4] = {(unsigned char)c->seq, 0x5a, (unsigned char)(c->id), 0xc3};
            size_t h = 0;
            o[h++] = (char)0x81;
            e[0] = (char)0x81;
            if (size < 126) {
                o[h++] = (char)(0x80 | size);
                e[1] = (char)size;
            } else {
                o[h++] = (char)(0x80 | 126);
                o[h++] = (char)(size >> 8);
                o[h++] = (char)(size & 255);
                e[1] = 126;
                e[2] = (char)(size >> 8);
                e[3] = (char)(size & 255);
            }
            memcpy(o + h, mask, 4);
            h += 4;
            for (int j = 0; j < plen; j++) o[h + j] = payload[j] ^ mask[j & 3];
            memcpy(e + in_size - plen, payload, plen);
        }
        o += out_size;
        e += in_size;
    }
    c->out_len = out_size * pipeline;
    c->exp_len = in_size * pipeline;
    c->out_off = 0;
    c->got = 0;
}

static int open_conn(struct conn *c, int child) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nsrc > 0) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(src_base + child % nsrc));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &dst.sin_addr);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = S_CONNECTING;
    return fd;
}

static void kill_conn(int ep, struct conn *c, struct result *r, int count_error) {
    if (c->state == S_DEAD) return;
    if (count_error) r->conn_errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = S_DEAD;
}

static int flush_out(int ep, struct conn *c, struct result *r) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            kill_conn(ep, c, r, 1);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    return 0;
}

static void send_batch(int ep, struct conn *c, struct result *r, double t) {
    make_batch(c);
    c->sent_at = t;
    flush_out(ep, c, r);
}

/* Consume echoed bytes; returns -1 when the connection was dropped. */
static int on_echo(int ep, struct conn *c, struct result *r, const char *buf, size_t n, double t) {
    size_t in_size = c->exp_len / (size_t)pipeline;
    if (n > c->exp_len - c->got || memcmp(buf, c->expect + c->got, n) != 0) {
        r->errors++;
        kill_conn(ep, c, r, 0);
        return -1;
    }
    size_t before = c->got / in_size;
    c->got += n;
    size_t done = c->got / in_size - before;
    if (done && t >= sh->t0 && t <= sh->t1) {
        r->msgs += done;
        r->hist[bucket((uint64_t)((t - c->sent_at) * 1e6))] += done;
    }
    if (c->got == c->exp_len && t < sh->t1) send_batch(ep, c, r, t);
    return 0;
}

static void child_main(int child, int first, int count) {
    struct result *r = &sh->res[child];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct conn *conns = calloc((size_t)count, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    size_t out_size = (size_t)size + 8, batch = out_size * (size_t)pipeline;
    int next = 0, pending = 0, ready = 0, done = 0, window = 256;
    double deadline = now() + connect_timeout;
    static char buf[1 << 16];
    struct epoll_event evs[512];

    /* Connect phase: at most `window` connects in flight (large bursts overflow accept queues). */
    while (ready + done < count && now() < deadline) {
        while (pending < window && next < count) {
            struct conn *c = &conns[next];
            c->id = (uint32_t)(first + next);
            next++;
            if (open_conn(c, child) < 0) {
                r->conn_errors++;
                c->state = S_DEAD;
                done++;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            pending++;
        }
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state == S_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || (evs[i].events & (EPOLLERR | EPOLLHUP))) {
                    kill_conn(ep, c, r, 1);
                    pending--;
                    done++;
                    continue;
                }
                if (ws_mode) {
                    c->state = S_HANDSHAKE;
                    if (write(c->fd, WS_REQUEST, sizeof WS_REQUEST - 1) != sizeof WS_REQUEST - 1) {
                        kill_conn(ep, c, r, 1);
                        pending--;
                        done++;
                        continue;
                    }
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                } else {
                    c->state = S_READY;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    pending--;
                    ready++;
                }
            } else if (c->state == S_HANDSHAKE) {
                ssize_t m = read(c->fd, c->hs + c->hs_len, sizeof c->hs - 1 - c->hs_len);
                if (m <= 0) {
                    if (m < 0 && errno == EAGAIN) continue;
                    kill_conn(ep, c, r, 1);
                    pending--;
                    done++;
                    continue;
                }
                c->hs_len += (size_t)m;
                c->hs[c->hs_len] = 0;
                char *end = strstr(c->hs, "\r\n\r\n");
                if (end) {
                    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0 || end + 4 != c->hs + c->hs_len) {
                        kill_conn(ep, c, r, 1);
                        pending--;
                        done++;
                    } else if (echo_check) {
                        /* one echo round trip before the connection counts as ready */
                        c->state = S_ECHO;
                        c->hs_len = 0;
                        if (write(c->fd, CHECK_FRAME, sizeof CHECK_FRAME - 1) != sizeof CHECK_FRAME - 1) {
                            kill_conn(ep, c, r, 1);
                            pending--;
                            done++;
                        }
                    } else {
                        c->state = S_READY;
                        pending--;
                        ready++;
                    }
                } else if (c->hs_len >= sizeof c->hs - 1) {
                    kill_conn(ep, c, r, 1);
                    pending--;
                    done++;
                }
            } else if (c->state == S_ECHO) {
                ssize_t m = read(c->fd, c->hs + c->hs_len, sizeof CHECK_ECHO - 1 - c->hs_len);
                if (m < 0 && errno == EAGAIN) continue;
                if (m <= 0 || memcmp(c->hs + c->hs_len, CHECK_ECHO + c->hs_len, (size_t)m) != 0) {
                    if (m > 0) r->errors++;
                    kill_conn(ep, c, r, m <= 0);
                    pending--;
                    done++;
                    continue;
                }
                c->hs_len += (size_t)m;
                if (c->hs_len == sizeof CHECK_ECHO - 1) {
                    c->state = S_READY;
                    c->hs_len = 0;
                    pending--;
                    ready++;
                }
            } else if (c->state == S_READY) {
                /* data or EOF before the load starts: unexpected */
                kill_conn(ep, c, r, 1);
                ready--;
                done++;
            }
        }
    }
    for (int i = 0; i < count; i++)
        if (conns[i].state != S_READY && conns[i].state != S_DEAD) kill_conn(ep, &conns[i], r, 1);
    r->connected = (uint64_t)ready;
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);

    if (mode == M_IDLE || mode == M_IDLEWS) {
        while (!sh->quit) usleep(20000);
        _exit(0);
    }
    if (mode == M_BCAST) {
        /* Wait for the one broadcast frame on every connection. */
        static const char expect[] = "\x81\x09" "broadcast";
        int left = ready;
        r->first_recv = 0;
        while (left > 0 && !sh->quit) {
            int n = epoll_wait(ep, evs, 512, 50);
            double t = now();
            for (int i = 0; i < n; i++) {
                struct conn *c = evs[i].data.ptr;
                ssize_t m = read(c->fd, buf, sizeof buf);
                if (m <= 0) {
                    if (m < 0 && errno == EAGAIN) continue;
                    kill_conn(ep, c, r, 1);
                    left--;
                    continue;
                }
                if ((size_t)m + c->got > 11 || memcmp(buf, expect + c->got, (size_t)m) != 0) {
                    r->errors++;
                    kill_conn(ep, c, r, 0);
                    left--;
                    continue;
                }
                c->got += (size_t)m;
                if (c->got == 11) {
                    r->received++;
                    if (r->first_recv == 0 || t < r->first_recv) r->first_recv = t;
                    if (t > r->last_recv) r->last_recv = t;
                    left--;
                }
            }
        }
        _exit(0);
    }

    /* Load phase. */
    for (int i = 0; i < count; i++) {
        conns[i].out = malloc(batch);
        conns[i].expect = malloc(batch);
    }
    while (!sh->go) usleep(1000);
    double t = now(), t1 = sh->t1, cpu0 = -1;
    for (int i = 0; i < count; i++)
        if (conns[i].state == S_READY) send_batch(ep, &conns[i], r, t);
    while ((t = now()) < t1) {
        if (cpu0 < 0 && t >= sh->t0) cpu0 = cpu_time();
        int n = epoll_wait(ep, evs, 512, 20);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state == S_DEAD) continue;
            if (evs[i].events & EPOLLOUT) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (flush_out(ep, c, r) < 0) continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                for (;;) {
                    ssize_t m = read(c->fd, buf, sizeof buf);
                    if (m < 0 && errno == EAGAIN) break;
                    if (m <= 0) {
                        kill_conn(ep, c, r, 1);
                        break;
                    }
                    t = now();
                    if (on_echo(ep, c, r, buf, (size_t)m, t) < 0 || (size_t)m < sizeof buf) break;
                }
            }
        }
    }
    r->cpu = cpu0 < 0 ? 0 : cpu_time() - cpu0;
    _exit(0);
}

static int ws_trigger(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &dst.sin_addr);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write(fd, WS_REQUEST, sizeof WS_REQUEST - 1) < 0) return -1;
    char hs[1024];
    size_t len = 0;
    while (len < sizeof hs - 1) {
        ssize_t m = read(fd, hs + len, sizeof hs - 1 - len);
        if (m <= 0) return -1;
        len += (size_t)m;
        hs[len] = 0;
        if (strstr(hs, "\r\n\r\n")) break;
    }
    return strncmp(hs, "HTTP/1.1 101", 12) == 0 ? fd : -1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen MODE -p PORT [-H host] [-c conns] [-P procs] [-d secs] [-w warmup]\n"
            "       [-n pipeline] [-s size] [-S nsources] [-B first_source_octet] [-T connect_timeout]\n"
            "       [-E]  (idlews, broadcast: one echo per connection before it counts as ready)\n"
            "MODE: text frame ws idle idlews broadcast\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *m = argv[1];
    if (!strcmp(m, "text")) mode = M_TEXT;
    else if (!strcmp(m, "frame")) mode = M_FRAME;
    else if (!strcmp(m, "ws")) mode = M_WS;
    else if (!strcmp(m, "idle")) mode = M_IDLE;
    else if (!strcmp(m, "idlews")) mode = M_IDLEWS;
    else if (!strcmp(m, "broadcast")) mode = M_BCAST;
    else usage();
    ws_mode = mode == M_WS || mode == M_IDLEWS || mode == M_BCAST;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "p:H:c:P:d:w:n:s:S:B:T:E")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'H': host = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 'P': nprocs = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'n': pipeline = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'S': nsrc = atoi(optarg); break;
        case 'B': src_base = atoi(optarg); break;
        case 'T': connect_timeout = atof(optarg); break;
        case 'E': echo_check = 1; break;
        default: usage();
        }
    }
    if (!port || nprocs < 1 || nprocs > MAXP || pipeline < 1 || size < 24 || size > 60000) usage();
    if (nprocs > nconns) nprocs = nconns > 0 ? nconns : 1;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sh->t0 = 1e18;
    sh->t1 = 1e18;
    pid_t pids[MAXP];
    int first = 0;
    for (int i = 0; i < nprocs; i++) {
        int count = nconns / nprocs + (i < nconns % nprocs);
        pid_t pid = fork();
        if (pid == 0) child_main(i, first, count);
        pids[i] = pid;
        first += count;
    }
    double deadline = now() + connect_timeout + 5;
    while (sh->ready < nprocs && now() < deadline) usleep(2000);
    uint64_t connected = 0, failed = 0;
    for (int i = 0; i < nprocs; i++) {
        connected += sh->res[i].connected;
        failed += sh->res[i].conn_errors;
    }
    printf("READY %llu %llu\n", (unsigned long long)connected, (unsigned long long)failed);
    fflush(stdout);

    if (mode == M_IDLE || mode == M_IDLEWS) {
        char line[64];
        if (!fgets(line, sizeof line, stdin)) { /* EOF: quit too */ }
        sh->quit = 1;
        for (int i = 0; i < nprocs; i++) waitpid(pids[i], NULL, 0);
        return 0;
    }
    if (mode == M_BCAST) {
        usleep(300000);
        int fd = ws_trigger();
        if (fd < 0) {
            printf("RESULT error=trigger\n");
            sh->quit = 1;
        } else {
            static const char frame[] = "\x81\x89\x00\x00\x00\x00" "broadcast";
            double t = now();
            if (write(fd, frame, sizeof frame - 1) < 0) sh->quit = 1;
            double limit = t + duration;
            for (;;) {
                uint64_t got = 0;
                for (int i = 0; i < nprocs; i++) got += sh->res[i].received + sh->res[i].errors;
                if (got >= connected || now() > limit) break;
                usleep(1000);
            }
            sh->quit = 1;
            for (int i = 0; i < nprocs; i++) waitpid(pids[i], NULL, 0);
            uint64_t received = 0, errors = 0;
            double first_t = 0, last_t = 0;
            for (int i = 0; i < nprocs; i++) {
                struct result *r = &sh->res[i];
                received += r->received;
                errors += r->errors + r->conn_errors;
                if (r->received && (first_t == 0 || r->first_recv < first_t)) first_t = r->first_recv;
                if (r->last_recv > last_t) last_t = r->last_recv;
            }
            printf("RESULT connections=%llu received=%llu missing=%llu errors=%llu first_ms=%.3f "
                   "last_ms=%.3f\n",
                   (unsigned long long)connected, (unsigned long long)received,
                   (unsigned long long)(connected - received), (unsigned long long)errors,
                   received ? (first_t - t) * 1e3 : -1.0, received ? (last_t - t) * 1e3 : -1.0);
            close(fd);
        }
        fflush(stdout);
        return 0;
    }

    double t0 = now() + warmup;
    sh->t0 = t0;
    sh->t1 = t0 + duration;
    __atomic_store_n(&sh->go, 1, __ATOMIC_SEQ_CST);
    printf("WINDOW %.6f %.6f\n", t0, t0 + duration);
    fflush(stdout);
    for (int i = 0; i < nprocs; i++) waitpid(pids[i], NULL, 0);
    uint64_t msgs = 0, errors = 0, conn_errors = 0, total = 0;
    double cpu = 0;
    static uint64_t hist[NB];
    for (int i = 0; i < nprocs; i++) {
        struct result *r = &sh->res[i];
        msgs += r->msgs;
        errors += r->errors;
        conn_errors += r->conn_errors;
        cpu += r->cpu;
        for (int b = 0; b < NB; b++) hist[b] += r->hist[b];
    }
    for (int b = 0; b < NB; b++) total += hist[b];
    double p50 = 0, p99 = 0, pmax = 0;
    uint64_t acc = 0;
    for (int b = 0; b < NB; b++) {
        if (!hist[b]) continue;
        if (acc < total / 2 && acc + hist[b] >= total / 2) p50 = bucket_value(b);
        if (acc < total * 99 / 100 && acc + hist[b] >= total * 99 / 100) p99 = bucket_value(b);
        acc += hist[b];
        pmax = bucket_value(b);
    }
    printf("RESULT msgs=%llu rate=%.1f errors=%llu conn_errors=%llu connected=%llu p50_us=%.0f "
           "p99_us=%.0f max_us=%.0f cpu_s=%.3f\n",
           (unsigned long long)msgs, msgs / duration, (unsigned long long)errors,
           (unsigned long long)conn_errors, (unsigned long long)connected, p50, p99, pmax, cpu);
    fflush(stdout);
    return 0;
}
