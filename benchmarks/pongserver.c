/* pongserver: the ping scenarios' fake Asterisk 22 manager, in C (issue 13).
 *
 * Speaks exactly what benchmarks/loadgen.py speaks for Login (plain Secret, or
 * Challenge + MD5 Key: any key is accepted), Ping, Events, Logoff and unknown
 * actions, byte for byte, but answers a Ping in a few microseconds of CPU as
 * Asterisk's C manager does, so that a raw blocking ping loop measures the
 * client and the loopback, not the server.  One thread per connection doing
 * blocking read()/write(), like Asterisk's manager session thread; pipelined
 * actions that arrive in one read() get one write().  UserEvent is echoed as
 * loadgen.py does, but event floods (UserEvent StartFlood with Count > 0) are
 * not supported: the event scenarios keep loadgen.py.
 *
 *   cc -O2 -pthread -o pongserver benchmarks/pongserver.c
 *   ./pongserver --port 0 [--host 127.0.0.1] [--max-seconds 1800]
 *
 * Prints "PORT <n>" then "EVENTS 0 MEANSIZE 0.0" on stdout (the start-up lines
 * of loadgen.py), then serves until killed, its parent process dies, or
 * --max-seconds pass.  It only ever binds to loopback.  Plain C99 + POSIX.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BANNER "Asterisk Call Manager/11.0.0\r\n"
#define PING_TS "1795703784.607925"
#define CHALLENGE "183378475"

typedef struct { char *p; size_t len, cap; } buf_t;
typedef struct { const char *p; size_t n; int found; } val_t;
typedef struct { int fd, authed, events_on; } session_t;

static void put(buf_t *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { perror("pongserver: realloc"); _exit(1); }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }
static void putv(buf_t *b, val_t v) { put(b, v.p, v.n); }

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* ASCII case-insensitive: s[0:n] == word (Python's bytes.lower() == word). */
static int ieq(const char *s, size_t n, const char *word) {
    size_t i;
    if (n != strlen(word)) return 0;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != word[i]) return 0;
    return 1;
}

static int ieqv(val_t v, const char *word) { return ieq(v.p, v.n, word); }

/* The first header `name` (lowercase) of a packet whose lines end with '\n':
 * the value after the first ':', leading blanks stripped (as loadgen.py). */
static val_t header(const char *pkt, size_t n, const char *name) {
    val_t v = {NULL, 0, 0};
    const char *end = pkt + n, *line = pkt;
    while (line <= end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *colon;
        if (!eol) eol = end;
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && ieq(line, (size_t)(colon - line), name)) {
            const char *s = colon + 1;
            while (s < eol && (*s == ' ' || *s == '\t')) s++;
            v.p = s;
            v.n = (size_t)(eol - s);
            v.found = 1;
            return v;
        }
        line = eol + 1;
    }
    return v;
}

static int is_off(val_t v) {
    return ieqv(v, "off") || ieqv(v, "no") || ieqv(v, "false") || ieqv(v, "0");
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Answer one packet (CRLF already folded to LF, final blank line removed) into
 * `out`, as loadgen.py's Session.handle.  Returns 0 when the session must close
 * after `out` is sent (Logoff, unsupported flood), 1 otherwise. */
static int handle(session_t *s, const char *pkt, size_t n, buf_t *out) {
    val_t aid = header(pkt, n, "actionid");
    val_t action = header(pkt, n, "action");
    /* "ActionID: <id>\r\n" only when a non-empty ActionID was sent */
#define AID() do { if (aid.n) { puts_(out, "ActionID: "); putv(out, aid); puts_(out, "\r\n"); } } while (0)
    if (!action.n) {
        puts_(out, "Response: Error\r\n"); AID();
        puts_(out, "Message: Missing action in request\r\n\r\n");
        return 1;
    }
    if (ieqv(action, "ping") && s->authed) {
        puts_(out, "Response: Success\r\n"); AID();
        puts_(out, "Ping: Pong\r\nTimestamp: " PING_TS "\r\n\r\n");
        return 1;
    }
    if (ieqv(action, "challenge")) {
        puts_(out, "Response: Success\r\n"); AID();
        puts_(out, "Challenge: " CHALLENGE "\r\n\r\n");
        return 1;
    }
    if (ieqv(action, "login")) {
        val_t ev = header(pkt, n, "events");
        s->authed = 1;
        s->events_on = !(ev.found && is_off(ev));
        puts_(out, "Response: Success\r\n"); AID();
        puts_(out, "Message: Authentication accepted\r\n\r\n");
        if (s->events_on)
            puts_(out, "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 19\r\n"
                       "LastReload: 19\r\nStatus: Fully Booted\r\n\r\n");
        return 1;
    }
    if (ieqv(action, "logoff")) {
        puts_(out, "Response: Goodbye\r\n"); AID();
        puts_(out, "Message: Thanks for all the fish.\r\n\r\n");
        return 0;
    }
    if (!s->authed) {
        puts_(out, "Response: Error\r\n"); AID();
        puts_(out, "Message: Permission denied\r\n\r\n");
        return 1;
    }
    if (ieqv(action, "events")) {
        val_t mask = header(pkt, n, "eventmask");
        s->events_on = !(mask.found && is_off(mask));
        puts_(out, "Response: Success\r\n"); AID();
        puts_(out, s->events_on ? "Events: On\r\n\r\n" : "Events: Off\r\n\r\n");
        return 1;
    }
    if (ieqv(action, "userevent")) {
        puts_(out, "Response: Success\r\n"); AID();
        puts_(out, "Message: Event Sent\r\n\r\n");
        if (s->events_on) {
            val_t name = header(pkt, n, "userevent");
            const char *end = pkt + n, *line = pkt;
            int first = 1;
            puts_(out, "Event: UserEvent\r\nPrivilege: user,all\r\n");
            while (line <= end) {  /* the packet's lines but Action:, CRLF-joined */
                const char *eol = memchr(line, '\n', (size_t)(end - line));
                size_t len;
                if (!eol) eol = end;
                len = (size_t)(eol - line);
                if (len && !(len >= 7 && ieq(line, 7, "action:"))) {
                    if (!first) puts_(out, "\r\n");
                    put(out, line, len);
                    first = 0;
                }
                line = eol + 1;
            }
            puts_(out, "\r\n\r\n");
            if (name.n == 10 && memcmp(name.p, "StartFlood", 10) == 0) {
                val_t cv = header(pkt, n, "count");
                char num[32], *e;
                long count = 0;
                if (cv.n && cv.n < sizeof num) {
                    memcpy(num, cv.p, cv.n);
                    num[cv.n] = 0;
                    count = strtol(num, &e, 10);
                    while (*e == ' ' || *e == '\t') e++;
                    if (*e) count = 0;
                }
                if (count > 0) {
                    fprintf(stderr, "pongserver: event floods are loadgen.py's job; closing\n");
                    return 0;
                }
                snprintf(num, sizeof num, "%ld", count);
                puts_(out, "Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: FloodDone\r\nCount: ");
                puts_(out, num);
                puts_(out, "\r\n\r\n");
            }
        }
        return 1;
    }
    puts_(out, "Response: Error\r\n"); AID();
    puts_(out, "Message: Invalid/unknown command: ");
    putv(out, action);
    puts_(out, ". Use Action: ListCommands to show available commands.\r\n\r\n");
    return 1;
#undef AID
}

/* Fold every "\r\n" of b to "\n" in place (bytes.replace, one left-to-right pass). */
static void fold_crlf(buf_t *b) {
    char *r = memchr(b->p, '\r', b->len), *w, *end = b->p + b->len;
    if (!r) return;
    for (w = r; r < end; r++) {
        if (*r == '\r' && r + 1 < end && r[1] == '\n') continue;
        *w++ = *r;
    }
    b->len = (size_t)(w - b->p);
}

static void *session_main(void *arg) {
    session_t *s = arg;
    buf_t in = {NULL, 0, 0}, out = {NULL, 0, 0};
    char rd[65536];
    int open = 1;
    if (write_all(s->fd, BANNER, sizeof BANNER - 1) < 0) open = 0;
    while (open) {
        ssize_t k = read(s->fd, rd, sizeof rd);
        size_t start = 0;
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        put(&in, rd, (size_t)k);
        fold_crlf(&in);  /* the whole leftover, as loadgen.py re-folds its buffer */
        out.len = 0;
        for (;;) {  /* every "\n\n"-terminated packet; the rest waits for more data */
            char *p = in.p + start, *sep = NULL, *q;
            for (q = p; q + 1 < in.p + in.len; q++)
                if (q[0] == '\n' && q[1] == '\n') { sep = q; break; }
            if (!sep) break;
            start = (size_t)(sep + 2 - in.p);
            if (!handle(s, p, (size_t)(sep - p), &out)) { open = 0; break; }
        }
        memmove(in.p, in.p + start, in.len - start);
        in.len -= start;
        if (out.len && write_all(s->fd, out.p, out.len) < 0) break;
    }
    close(s->fd);
    free(in.p);
    free(out.p);
    free(s);
    return NULL;
}

static double max_seconds = 1800.0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Exit when the parent process dies or --max-seconds pass (as loadgen.py). */
static void *watchdog(void *arg) {
    pid_t parent = getppid();
    double deadline = now() + max_seconds;
    struct timespec half = {0, 500000000L};
    (void)arg;
    for (;;) {
        nanosleep(&half, NULL);
        if (getppid() != parent || now() > deadline) _exit(0);
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: pongserver [--host 127.0.0.1|localhost|::1] [--port N] [--max-seconds S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, lsock, one = 1, i;
    struct sockaddr_storage ss;
    socklen_t sl;
    pthread_t tid;
    pthread_attr_t attr;
    memset(&ss, 0, sizeof ss);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--max-seconds")) max_seconds = atof(v);
        else if (!strcmp(a, "--events")) ;  /* loadgen.py's options, no events here */
        else if (!strcmp(a, "--mode")) { if (strcmp(v, "trigger")) usage(); }
        else usage();
        i++;
    }
    if (!strcmp(host, "::1")) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_loopback;
        a6->sin6_port = htons((unsigned short)port);
        sl = sizeof *a6;
    } else if (!strcmp(host, "127.0.0.1") || !strcmp(host, "localhost")) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a4->sin_port = htons((unsigned short)port);
        sl = sizeof *a4;
    } else {
        fprintf(stderr, "pongserver only binds to loopback\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lsock = socket(ss.ss_family, SOCK_STREAM, 0);
    setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lsock < 0 || bind(lsock, (struct sockaddr *)&ss, sl) < 0 || listen(lsock, 128) < 0
        || getsockname(lsock, (struct sockaddr *)&ss, &sl) < 0) {
        perror("pongserver");
        return 1;
    }
    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&tid, &attr, watchdog, NULL);
    printf("PORT %d\nEVENTS 0 MEANSIZE 0.0\n", port);
    fflush(stdout);
    for (;;) {
        int fd = accept(lsock, NULL, NULL);
        session_t *s;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("pongserver: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s = calloc(1, sizeof *s);
        if (!s) { close(fd); continue; }
        s->fd = fd;
        if (pthread_create(&tid, &attr, session_main, s) != 0) { close(fd); free(s); }
    }
}
