/*
 * TUN device for Linux. Pure C: the N-API glue in binding.c is the only caller.
 * Configuration goes through ioctls on a throwaway AF_INET socket, as `ip` does.
 */
#define _GNU_SOURCE
#include "tun_linux.h"
#include "offload_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int tun_open_flags(const char *name, char *out_name, short flags) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  /* IFF_NO_PI: packets are bare IP, no 4-byte protocol-info prefix. */
  ifr.ifr_flags = flags;
  if (name != NULL && name[0] != '\0') {
    if (strlen(name) >= IFNAMSIZ) {
      close(fd);
      return -EINVAL;
    }
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  }
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  out_name[IFNAMSIZ - 1] = '\0';
  return fd;
}

int isthmus_tun_open(const char *name, char *out_name, int *offload) {
  if (*offload) {
    int fd = tun_open_flags(name, out_name, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR);
    if (fd < 0) return fd; /* EPERM, EBUSY...: the same without offloads */
    /* TSO4 needs CSUM; no TSO6 (the data path is IPv4) and no USO (not split here). */
    if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) == 0) return fd;
    close(fd);
    *offload = 0;
  }
  return tun_open_flags(name, out_name, IFF_TUN | IFF_NO_PI);
}

struct isthmus_tun_offload_s {
  uint8_t *scratch;   /* one read: vnet header + up to 64 KB */
  size_t pending_len; /* > 0: scratch holds a packet split up to `next` of `total` */
  uint32_t next, total;
  uint8_t *out;       /* one coalesced write */
  uint8_t used[4096];
};

#define SCRATCH_SIZE (ISTHMUS_VNET_HDR_LEN + ISTHMUS_OFFLOAD_MAX_PACKET + 1)

isthmus_tun_offload_t *isthmus_tun_offload_new(void) {
  isthmus_tun_offload_t *o = calloc(1, sizeof(*o));
  if (!o) return NULL;
  o->scratch = malloc(SCRATCH_SIZE);
  o->out = malloc(SCRATCH_SIZE);
  if (!o->scratch || !o->out) {
    isthmus_tun_offload_free(o);
    return NULL;
  }
  return o;
}

void isthmus_tun_offload_free(isthmus_tun_offload_t *o) {
  if (!o) return;
  free(o->scratch);
  free(o->out);
  free(o);
}

int isthmus_tun_offload_pending(const isthmus_tun_offload_t *o) { return o && o->pending_len > 0; }

/* Runs one SIOC* ioctl on a temporary AF_INET socket. */
static int ifreq_ioctl(unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  int r = ioctl(s, req, ifr);
  int err = errno;
  close(s);
  return r < 0 ? -err : 0;
}

static void ifreq_init(struct ifreq *ifr, const char *ifname) {
  memset(ifr, 0, sizeof(*ifr));
  strncpy(ifr->ifr_name, ifname, IFNAMSIZ - 1);
}

int isthmus_tun_set_mtu(const char *ifname, int mtu) {
  struct ifreq ifr;
  ifreq_init(&ifr, ifname);
  ifr.ifr_mtu = mtu;
  return ifreq_ioctl(SIOCSIFMTU, &ifr);
}

static void set_sin(struct sockaddr *sa, uint32_t host_order) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(host_order);
  memcpy(sa, &sin, sizeof(sin));
}

int isthmus_tun_set_ipv4(const char *ifname, uint32_t addr, int prefix_len) {
  if (prefix_len < 0 || prefix_len > 32) return -EINVAL;
  struct ifreq ifr;
  ifreq_init(&ifr, ifname);
  set_sin(&ifr.ifr_addr, addr);
  int r = ifreq_ioctl(SIOCSIFADDR, &ifr);
  if (r < 0) return r;
  uint32_t mask = prefix_len == 0 ? 0 : (uint32_t)0xffffffffu << (32 - prefix_len);
  ifreq_init(&ifr, ifname);
  set_sin(&ifr.ifr_netmask, mask);
  return ifreq_ioctl(SIOCSIFNETMASK, &ifr);
}

int isthmus_tun_set_up(const char *ifname) {
  struct ifreq ifr;
  ifreq_init(&ifr, ifname);
  int r = ifreq_ioctl(SIOCGIFFLAGS, &ifr);
  if (r < 0) return r;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

int isthmus_tun_read_batch(int fd, uint8_t *slab, uint32_t slot_size, uint32_t headroom,
                           uint32_t max, uint32_t *lengths) {
  uint32_t n = 0;
  while (n < max) {
    ssize_t r = read(fd, slab + (size_t)n * slot_size + headroom, slot_size - headroom);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (n == 0) return -errno;
      break;
    }
    lengths[n++] = (uint32_t)r;
  }
  return (int)n;
}

int isthmus_tun_write_batch(int fd, const uint8_t *const *bufs, const uint32_t *lengths,
                            uint32_t count, uint32_t *errors) {
  int written = 0;
  for (uint32_t i = 0; i < count; i++) {
    ssize_t r = write(fd, bufs[i], lengths[i]);
    if (r < 0) {
      if (errno == EINTR) {
        i--;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        /* Kernel queue full: TUN has no writability signal worth waiting for on the
         * hot path; drop the rest of the batch, the inner protocol retransmits. */
        *errors += count - i;
        break;
      }
      (*errors)++;
      continue;
    }
    written++;
  }
  return written;
}

int isthmus_tun_read_batch_offload(int fd, isthmus_tun_offload_t *o, uint8_t *slab,
                                   uint32_t slot_size, uint32_t headroom, uint32_t max_len,
                                   uint32_t max, uint32_t *lengths, isthmus_offload_counts_t *c) {
  uint32_t n = 0;
  while (n < max) {
    if (o->pending_len == 0) {
      ssize_t r = read(fd, o->scratch, SCRATCH_SIZE);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (n == 0) return -errno;
        break;
      }
      o->pending_len = (size_t)r;
      o->next = 0;
    }
    if (o->pending_len >= SCRATCH_SIZE) {
      /* Longer than any packet can be: a truncated read, dropped whole. */
      c->malformed++;
      o->pending_len = 0;
      continue;
    }
    uint32_t total = 0;
    int k = isthmus_offload_split(o->scratch, o->pending_len, o->next, slab + (size_t)n * slot_size,
                                  slot_size, headroom, max_len, max - n, lengths + n, &total);
    if (k < 0) {
      /* A vnet header or GSO packet we cannot split: dropped whole, never half. */
      c->malformed++;
      o->pending_len = 0;
      continue;
    }
    if (o->next == 0 && total > 1) c->rx_super++;
    n += (uint32_t)k;
    o->next += (uint32_t)k;
    if (o->next >= total) o->pending_len = 0;
  }
  return (int)n;
}

int isthmus_tun_write_batch_offload(int fd, isthmus_tun_offload_t *o, const uint8_t *const *bufs,
                                    const uint32_t *lengths, uint32_t count, uint32_t *errors,
                                    isthmus_offload_counts_t *c) {
  static const uint8_t zero_hdr[ISTHMUS_VNET_HDR_LEN];
  if (count > sizeof(o->used)) count = sizeof(o->used);
  memset(o->used, 0, count);
  int written = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (o->used[i]) continue;
    uint32_t merged = 1;
    size_t n = isthmus_offload_coalesce(bufs, lengths, count, o->used, i, o->out, &merged);
    ssize_t r;
    do {
      if (n > 0) {
        r = write(fd, o->out, n);
      } else {
        struct iovec iov[2] = {{(void *)zero_hdr, ISTHMUS_VNET_HDR_LEN}, {(void *)bufs[i], lengths[i]}};
        r = writev(fd, iov, 2);
      }
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        /* Kernel queue full: drop this group and the rest (as isthmus_tun_write_batch). */
        uint32_t rest = merged;
        for (uint32_t j = i + 1; j < count; j++) rest += !o->used[j];
        *errors += rest;
        break;
      }
      *errors += merged;
      continue;
    }
    if (n > 0) c->tx_super++;
    written += (int)merged;
  }
  return written;
}
