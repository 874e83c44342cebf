/*
 * TUN device for Linux. Pure C: the N-API glue in binding.c is the only caller.
 * Configuration goes through ioctls on a throwaway AF_INET socket, as `ip` does.
 */
#define _GNU_SOURCE
#include "tun_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int isthmus_tun_open(const char *name, char *out_name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  /* IFF_NO_PI: packets are bare IP, no 4-byte protocol-info prefix. */
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
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
