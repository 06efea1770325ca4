/* harness.c: a real dialogued for the client's integration tests (see
 * harness.h). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef DLGT_BUILD
#define DLGT_BUILD "build"
#endif

/* The SIGALRM handler can only reach the daemon through a static: this is
 * test code, and the handler must be async-signal-safe. It kills the
 * daemon started last; others (a test with two) die with the test process
 * through PR_SET_PDEATHSIG. */
static volatile pid_t alarm_pid;
static const char *volatile alarm_test;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "\n*** test timed out: ";
    if (alarm_pid > 0)
        kill(alarm_pid, SIGKILL);
    (void)!write(2, msg, sizeof(msg) - 1);
    if (alarm_test != NULL)
        (void)!write(2, alarm_test, strlen(alarm_test));
    (void)!write(2, "\n", 1);
    _exit(1);
}

void dlgt_timeout(unsigned seconds, const char *test) {
    alarm_test = test;
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

const char *dlgt_daemon_path(void) {
    static char path[512];
    const char *env = getenv("DLG_DAEMON");
    if (env != NULL && access(env, X_OK) == 0)
        return env;
    snprintf(path, sizeof(path), "%s/bin/dialogued", DLGT_BUILD);
    if (access(path, X_OK) == 0)
        return path;
    if (access("build/bin/dialogued", X_OK) == 0)
        return "build/bin/dialogued";
    return NULL;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "harness: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Replaces {certs} and {share} in tmpl into a new string. */
static char *subst(const char *tmpl, const char *certs, const char *share) {
    size_t cap = strlen(tmpl) * 2 + 4096, n = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (const char *p = tmpl; *p;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (strncmp(p, "{certs}", 7) == 0)
            rep = certs, skip = 7;
        else if (strncmp(p, "{share}", 7) == 0)
            rep = share, skip = 7;
        if (rep != NULL) {
            size_t l = strlen(rep);
            if (n + l + 1 > cap)
                break;
            memcpy(out + n, rep, l);
            n += l;
            p += skip;
        } else {
            if (n + 2 > cap)
                break;
            out[n++] = *p++;
        }
    }
    out[n] = 0;
    return out;
}

int dlgt_setup(dlgt_daemon *d, const char *config_yaml) {
    char cmd[1024], share[512], cwd[256];
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/dlg-client-test-XXXXXX");
    if (mkdtemp(d->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(d->certs, sizeof(d->certs), "%s/certs", d->dir);
    snprintf(d->port_file, sizeof(d->port_file), "%s/port", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/dialogued.log", d->dir);
    snprintf(cmd, sizeof(cmd), "tools/devcerts.sh '%s' >/dev/null", d->certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "harness: %s failed (run the tests from the repository root)\n", cmd);
        return -1;
    }
    if (config_yaml == NULL)
        return 0;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return -1;
    snprintf(share, sizeof(share), "%s/%s/share/dialogue", cwd, DLGT_BUILD);
    snprintf(d->config, sizeof(d->config), "%s/dialogue.yaml", d->dir);
    char *text = subst(config_yaml, d->certs, share);
    if (text == NULL)
        return -1;
    int rc = write_file(d->config, text);
    free(text);
    return rc;
}

int dlgt_share_certs(dlgt_daemon *d, const dlgt_daemon *from) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp -f '%s'/* '%s'/", from->certs, d->certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "harness: %s failed\n", cmd);
        return -1;
    }
    return 0;
}

void dlgt_dump_log(const dlgt_daemon *d) {
    FILE *f = fopen(d->log, "r");
    char line[1024];
    if (f == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", d->log);
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int dlgt_start(dlgt_daemon *d, unsigned port) {
    const char *bin = dlgt_daemon_path();
    char listen[64], cert[400], key[400];
    if (bin == NULL)
        return -1;
    unlink(d->port_file);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(cert, sizeof(cert), "%s/server.crt", d->certs);
    snprintf(key, sizeof(key), "%s/server.key", d->certs);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* The daemon must not outlive a crashed or killed test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (d->config[0])
            execl(bin, bin, "--config", d->config, "--listen", listen, "--port-file",
                  d->port_file, "--cert", cert, "--key", key, "--log-level", "debug",
                  (char *)NULL);
        else
            execl(bin, bin, "--listen", listen, "--port-file", d->port_file, "--cert",
                  cert, "--key", key, "--allow-anonymous", "--log-level", "debug",
                  (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    alarm_pid = pid;
    for (int i = 0; i < 1000; i++) { /* 10 s in 10 ms steps */
        FILE *f = fopen(d->port_file, "r");
        if (f != NULL) {
            char buf[32] = {0};
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            if (n > 0 && buf[n - 1] == '\n') {
                d->port = (unsigned)strtoul(buf, NULL, 10);
                return 0;
            }
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "harness: dialogued exited (status %d)\n", st);
            dlgt_dump_log(d);
            d->pid = 0;
            alarm_pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "harness: dialogued did not write %s within 10 s\n", d->port_file);
    dlgt_dump_log(d);
    dlgt_stop(d);
    return -1;
}

int dlgt_stop(dlgt_daemon *d) {
    int st = 0;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(d->pid, &st, WNOHANG) == d->pid)
            goto done;
        sleep_ms(10);
    }
    fprintf(stderr, "harness: dialogued ignored SIGTERM for 5 s; killing it\n");
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
done:
    d->pid = 0;
    alarm_pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void dlgt_kill(dlgt_daemon *d) {
    int st;
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    alarm_pid = 0;
}

void dlgt_teardown(dlgt_daemon *d) {
    char cmd[400];
    if (d->pid > 0)
        dlgt_stop(d);
    if (d->dir[0] && getenv("DLGT_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
        (void)!system(cmd);
    }
}

static void on_guard(uv_timer_t *t) {
    *(int *)t->data = 1;
}

int dlgt_run_until(uv_loop_t *loop, const volatile int *flag, unsigned timeout_ms) {
    uv_timer_t guard;
    int expired = 0;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, timeout_ms, 0);
    /* One loop turn at a time so the flag is seen as soon as it is set; the
     * guard timer wakes the loop if nothing else does. */
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag ? 0 : -1;
}

int dlgt_wait_count(atomic_int *counter, int want, unsigned timeout_ms) {
    for (unsigned waited = 0; atomic_load(counter) < want && waited < timeout_ms; waited += 5)
        sleep_ms(5);
    return atomic_load(counter) >= want ? 0 : -1;
}
