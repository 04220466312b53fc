/* The backdoor at its fixed address (BDEMU_CONTROL_ADDR): no set-up syscalls.
 * Prints the data window's size, marks its first and last byte, calls cmd 0xd0e
 * (the host checks the marks and answers in data[1]), then ping-pong argv[1] times (1000). */
#include <stdlib.h>
#include <bdemu.h>
#include "backdoor_common.h"

static void call(uint64_t cmd) { bdemu_call(cmd); }

int main(int argc, char **argv)
{
    if (bdemu_init_fixed() != 0) {
        printf("no fixed address on this ISA\n");
        return 1;
    }
    uint64_t size = bdemu_data_size();
    uint8_t *data = bdemu_data();
    printf("data_size=%llu\n", (unsigned long long)size);
    data[0] = 0xa5;
    data[size - 1] = 0x5a;
    bdemu_call(0xd0e);
    printf("answer=%#x\n", data[1]);
    return pingpong(call, data, argc > 1 ? atoi(argv[1]) : 1000);
}
