/*
 * nfq_delay: holds every packet that iptables sends to an NFQUEUE for a fixed time, then accepts
 * it. One process serves several queues of one network namespace; each queue has its own delay
 * and its own FIFO, so packets of one queue leave in the order they arrived.
 *
 *   nfq_delay -q NUM:DELAY_MS [-q NUM:DELAY_MS ...] [-r] [-p]
 *     -q  serve queue NUM with a one-way delay of DELAY_MS milliseconds (fractions allowed)
 *     -r  ask for SCHED_FIFO priority 1 so release times hold on a busy machine (best effort)
 *     -p  probe: bind the queues, print "ok" and exit 0 (the lab uses it to test NFQUEUE support)
 *   SIGUSR1 prints counters to stderr; SIGTERM/SIGINT accept whatever is held and exit.
 *
 * Why it is built this way:
 *  - Metadata-only copy (NFQNL_COPY_META) and NFQA_CFG_F_GSO: the payload never crosses into user
 *    space and GSO super-packets (up to 64 KiB) stay whole, so 1 Gbit/s is a few thousand
 *    packets per second rather than ~100k.
 *  - The delay per queue is constant, so a FIFO is already sorted by due time; releasing the head
 *    run with one nfq_set_verdict_batch() (accepts every id <= the last one) costs one netlink
 *    message per wake-up instead of one per packet.
 *  - A 64 MiB netlink receive buffer and NETLINK_NO_ENOBUFS absorb bursts while we sleep.
 *  - Fail-open: the queue is bound with NFQA_CFG_F_FAIL_OPEN, so when the kernel queue is full the
 *    kernel accepts packets undelayed rather than dropping them; when our ring is full we accept at
 *    once (counted as "overflow"). The iptables rule uses --queue-bypass, so packets flow
 *    undelayed if this process is gone. A lab that fails open shows up as a short RTT in the
 *    self-check instead of as a mysterious stall.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 16
#define RING_SIZE (1u << 16) /* packets held per queue; ~40k in flight at 10 Gbit/s x 50 ms */
#define RCVBUF_BYTES (64u << 20)
#define DRAIN_BATCH 256 /* messages read before re-checking due packets */

struct held {
  uint32_t id;
  uint64_t due_ns;
};

struct queue {
  unsigned num;
  uint64_t delay_ns;
  struct nfq_q_handle *qh;
  struct held *ring;
  uint32_t head, tail; /* free-running; index with & (RING_SIZE - 1) */
  uint64_t packets, overflow, max_backlog, late_ns_max, late_ns_sum, releases;
  uint64_t late_over_1ms; /* releases more than 1 ms behind schedule: a sign of CPU starvation */
};

static struct queue queues[MAX_QUEUES];
static unsigned n_queues;
static volatile sig_atomic_t stop_requested, stats_requested;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void on_stats(int sig) {
  (void)sig;
  stats_requested = 1;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data) {
  (void)msg;
  struct queue *q = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL) return 0;
  uint32_t id = ntohl(ph->packet_id);
  q->packets++;
  if (q->tail - q->head >= RING_SIZE) {
    /* Ring full: fail open. Accepting this one out of order is the lesser evil than a drop. */
    q->overflow++;
    return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
  }
  struct held *h = &q->ring[q->tail & (RING_SIZE - 1)];
  h->id = id;
  h->due_ns = now_ns() + q->delay_ns;
  q->tail++;
  uint64_t backlog = q->tail - q->head;
  if (backlog > q->max_backlog) q->max_backlog = backlog;
  return 0;
}

/* Accepts every packet whose time has come; returns the earliest remaining due time or 0. */
static uint64_t release_due(void) {
  uint64_t t = now_ns(), next = 0;
  for (unsigned i = 0; i < n_queues; i++) {
    struct queue *q = &queues[i];
    uint32_t last = 0;
    int any = 0;
    while (q->head != q->tail) {
      struct held *h = &q->ring[q->head & (RING_SIZE - 1)];
      if (h->due_ns > t) {
        if (next == 0 || h->due_ns < next) next = h->due_ns;
        break;
      }
      uint64_t late = t - h->due_ns;
      q->late_ns_sum += late;
      if (late > q->late_ns_max) q->late_ns_max = late;
      if (late > 1000000u) q->late_over_1ms++;
      last = h->id;
      any = 1;
      q->head++;
      q->releases++;
    }
    if (any) nfq_set_verdict_batch(q->qh, last, NF_ACCEPT);
  }
  return next;
}

static void print_stats(void) {
  for (unsigned i = 0; i < n_queues; i++) {
    const struct queue *q = &queues[i];
    double mean_us = q->releases ? (double)q->late_ns_sum / (double)q->releases / 1e3 : 0.0;
    fprintf(stderr,
            "nfq_delay queue=%u delay_ms=%.3f packets=%llu overflow=%llu max_backlog=%llu "
            "late_us_mean=%.1f late_us_max=%.1f late_over_1ms=%llu\n",
            q->num, (double)q->delay_ns / 1e6, (unsigned long long)q->packets,
            (unsigned long long)q->overflow, (unsigned long long)q->max_backlog, mean_us,
            (double)q->late_ns_max / 1e3, (unsigned long long)q->late_over_1ms);
  }
}

static int parse_queue(const char *arg) {
  char *end = NULL;
  unsigned long num = strtoul(arg, &end, 10);
  if (end == arg || *end != ':' || num > 65535) return -1;
  double ms = strtod(end + 1, &end);
  if (*end != '\0' || ms < 0 || ms > 60000) return -1;
  if (n_queues == MAX_QUEUES) return -1;
  struct queue *q = &queues[n_queues++];
  q->num = (unsigned)num;
  q->delay_ns = (uint64_t)(ms * 1e6);
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: nfq_delay -q NUM:DELAY_MS [-q NUM:DELAY_MS ...] [-r] [-p]\n");
}

int main(int argc, char **argv) {
  int opt, probe = 0, realtime = 0;
  while ((opt = getopt(argc, argv, "q:rp")) != -1) {
    if (opt == 'q' && parse_queue(optarg) == 0) continue;
    if (opt == 'r') { realtime = 1; continue; }
    if (opt == 'p') { probe = 1; continue; }
    usage();
    return 2;
  }
  if (n_queues == 0) {
    usage();
    return 2;
  }

  /* Default timer slack is 50 us; a delay emulator wants its wake-ups on time. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  if (realtime) {
    struct sched_param sp = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
      fprintf(stderr, "nfq_delay: SCHED_FIFO unavailable (%s); running at normal priority\n",
              strerror(errno));
  }

  struct nfq_handle *h = nfq_open();
  if (h == NULL) {
    perror("nfq_delay: nfq_open");
    return 1;
  }
  for (unsigned i = 0; i < n_queues; i++) {
    struct queue *q = &queues[i];
    q->qh = nfq_create_queue(h, (uint16_t)q->num, &on_packet, q);
    if (q->qh == NULL) {
      fprintf(stderr, "nfq_delay: cannot bind queue %u: %s\n", q->num, strerror(errno));
      return 1;
    }
    if (nfq_set_mode(q->qh, NFQNL_COPY_META, 0) < 0) {
      perror("nfq_delay: nfq_set_mode");
      return 1;
    }
    nfq_set_queue_maxlen(q->qh, RING_SIZE);
    uint32_t flags = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
    if (nfq_set_queue_flags(q->qh, flags, flags) < 0)
      fprintf(stderr, "nfq_delay: queue %u: GSO/fail-open flags not supported\n", q->num);
    q->ring = calloc(RING_SIZE, sizeof *q->ring);
    if (q->ring == NULL) {
      perror("nfq_delay: calloc");
      return 1;
    }
  }
  if (probe) {
    puts("ok");
    nfq_close(h);
    return 0;
  }

  nfnl_rcvbufsiz(nfq_nfnlh(h), RCVBUF_BYTES);
  int fd = nfq_fd(h), one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_stats;
  sigaction(SIGUSR1, &sa, NULL);

  static char buf[1 << 16];
  while (!stop_requested) {
    uint64_t next = release_due();
    struct timespec ts, *tsp = NULL;
    if (next != 0) {
      uint64_t t = now_ns();
      uint64_t left = next > t ? next - t : 0;
      ts.tv_sec = (time_t)(left / 1000000000u);
      ts.tv_nsec = (long)(left % 1000000000u);
      tsp = &ts;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    if (ppoll(&p, 1, tsp, NULL) < 0 && errno != EINTR) {
      perror("nfq_delay: ppoll");
      break;
    }
    if (stats_requested) {
      stats_requested = 0;
      print_stats();
    }
    for (int i = 0; i < DRAIN_BATCH; i++) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      nfq_handle_packet(h, buf, (int)n);
    }
  }

  /* Shutting down: let everything held go now rather than leaving it to the kernel to drop. */
  for (unsigned i = 0; i < n_queues; i++) {
    struct queue *q = &queues[i];
    if (q->head != q->tail)
      nfq_set_verdict_batch(q->qh, q->ring[(q->tail - 1) & (RING_SIZE - 1)].id, NF_ACCEPT);
    nfq_destroy_queue(q->qh);
    free(q->ring);
  }
  print_stats();
  nfq_close(h);
  return 0;
}
