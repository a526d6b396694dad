/* A tiny epoll server used to calibrate the load generators: if it gets more
 * through a generator than the Python servers do, the generator is not the
 * bottleneck. Usage: cecho PORT MODE WORKERS, MODE one of
 *   raw   echo the bytes back (a valid newline and frame echo)
 *   http  answer every request head ("\r\n\r\n") with a fixed "hello" response
 *   ws    answer the upgrade with 101 (the accept key is not computed: the
 *         bench's own generator does not check it), then echo each masked
 *         client frame (payload < 126 bytes) as an unmasked frame
 * WORKERS processes share one listening socket (EPOLLEXCLUSIVE).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EPOLLEXCLUSIVE
#define EPOLLEXCLUSIVE (1u << 28)
#endif

enum { RAW, HTTP, WS };
static int mode;

struct conn {
    int fd, upgraded, crlf; /* crlf: how much of "\r\n\r\n" was matched so far */
    size_t len;
    unsigned char buf[8192];
};

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
static const char UPGRADED[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno != EAGAIN) return -1;
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 1000);
            continue;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns -1 to close the connection. */
static int on_data(struct conn *c, unsigned char *data, size_t n) {
    static char out[1 << 17];
    size_t o = 0;
    if (mode == RAW) return write_all(c->fd, data, n);
    if (mode == HTTP || !c->upgraded) {
        size_t i = 0;
        for (; i < n; i++) {
            char want = "\r\n\r\n"[c->crlf];
            c->crlf = data[i] == want ? c->crlf + 1 : (data[i] == '\r' ? 1 : 0);
            if (c->crlf == 4) {
                c->crlf = 0;
                if (mode == WS) {
                    c->upgraded = 1;
                    i++;
                    break;
                }
                if (o + sizeof RESPONSE > sizeof out) {
                    if (write_all(c->fd, out, o) < 0) return -1;
                    o = 0;
                }
                memcpy(out + o, RESPONSE, sizeof RESPONSE - 1);
                o += sizeof RESPONSE - 1;
            }
        }
        if (mode == HTTP) return o ? write_all(c->fd, out, o) : 0;
        if (!c->upgraded) return 0;
        if (write_all(c->fd, UPGRADED, sizeof UPGRADED - 1) < 0) return -1;
        data += i;
        n -= i;
    }
    if (c->len + n > sizeof c->buf) return -1;
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    size_t p = 0;
    while (c->len - p >= 6) {
        unsigned char *f = c->buf + p;
        size_t plen = f[1] & 0x7f;
        if (plen >= 126 || !(f[1] & 0x80)) return -1;
        if (c->len - p < 6 + plen) break;
        if ((f[0] & 0x0f) == 8) return -1; /* close */
        out[o++] = (char)f[0];
        out[o++] = (char)plen;
        for (size_t j = 0; j < plen; j++) out[o++] = (char)(f[6 + j] ^ f[2 + (j & 3)]);
        p += 6 + plen;
    }
    memmove(c->buf, c->buf + p, c->len - p);
    c->len -= p;
    return o ? write_all(c->fd, out, o) : 0;
}

static void serve(int lfd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    static unsigned char buf[1 << 16];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, mode == WS ? sizeof *nc : offsetof(struct conn, buf));
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            ssize_t m = read(c->fd, buf, sizeof buf);
            if (m < 0 && errno == EAGAIN) continue;
            if (m <= 0 || on_data(c, buf, (size_t)m) < 0) {
                close(c->fd);
                free(c);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: cecho PORT raw|http|ws WORKERS\n");
        return 2;
    }
    mode = !strcmp(argv[2], "http") ? HTTP : !strcmp(argv[2], "ws") ? WS : RAW;
    int workers = atoi(argv[3]);
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("cecho: bind/listen");
        return 1;
    }
    for (int i = 0; i < workers; i++)
        if (fork() == 0) serve(lfd);
    while (wait(NULL) > 0) {
    }
    return 0;
}
