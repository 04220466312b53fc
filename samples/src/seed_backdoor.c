/* A seed-era guest (the 2011 docs/backdoor.txt example), unchanged API: qemu-backdoor.h.
 * No argument: find the device in sysfs; argv[1]: the user-mode base path. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qemu-backdoor.h>

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : NULL;
    if (qemu_backdoor_init(base) != 0) {
        fprintf(stderr, "error: qemu_backdoor_init: %s\n", strerror(errno));
        abort();
    }
    uint64_t vcmd = 0xcafe;
    uint64_t vdata = 0xbabe;
    printf("size: %" PRId64 "\n", qemu_backdoor_data_size());
    printf("sending cmd: 0x%" PRIx64 " data: 0x%" PRIx64 "\n", vcmd, vdata);
    uint64_t *data = qemu_backdoor_data();
    *data = vdata;
    qemu_backdoor(vcmd);
    printf("reply: 0x%" PRIx64 "\n", data[1]);
#ifdef BDEMU_HAVE_INSN
    printf("i8: %u\n", (unsigned)BACKDOOR_i8(3));
#endif
    qemu_backdoor_fini();
    return 0;
}
