/* Generated from src/brinery/_opcodes.py by
 *     python -m brinery._opcodes --header > src/brinery/_accel/opcodes.h
 * Do not edit: tests/test_opcodes.py checks that it is current. */
#ifndef BRINERY_OPCODES_H
#define BRINERY_OPCODES_H

#define HIGHEST_PROTOCOL 5
#define FRAME_SIZE_MIN 4
#define FRAME_SIZE_TARGET 65536
#define FRAME_HEADER_SIZE 9
#define BATCHSIZE 1000

enum opcode {
    OP_INT = 0x49,
    OP_BININT = 0x4a,
    OP_BININT1 = 0x4b,
    OP_BININT2 = 0x4d,
    OP_LONG = 0x4c,
    OP_LONG1 = 0x8a,
    OP_LONG4 = 0x8b,
    OP_STRING = 0x53,
    OP_BINSTRING = 0x54,
    OP_SHORT_BINSTRING = 0x55,
    OP_BINBYTES = 0x42,
    OP_SHORT_BINBYTES = 0x43,
    OP_BINBYTES8 = 0x8e,
    OP_BYTEARRAY8 = 0x96,
    OP_NEXT_BUFFER = 0x97,
    OP_READONLY_BUFFER = 0x98,
    OP_NONE = 0x4e,
    OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89,
    OP_UNICODE = 0x56,
    OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE = 0x58,
    OP_BINUNICODE8 = 0x8d,
    OP_FLOAT = 0x46,
    OP_BINFLOAT = 0x47,
    OP_EMPTY_LIST = 0x5d,
    OP_APPEND = 0x61,
    OP_APPENDS = 0x65,
    OP_LIST = 0x6c,
    OP_EMPTY_TUPLE = 0x29,
    OP_TUPLE = 0x74,
    OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86,
    OP_TUPLE3 = 0x87,
    OP_EMPTY_DICT = 0x7d,
    OP_DICT = 0x64,
    OP_SETITEM = 0x73,
    OP_SETITEMS = 0x75,
    OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90,
    OP_FROZENSET = 0x91,
    OP_POP = 0x30,
    OP_DUP = 0x32,
    OP_MARK = 0x28,
    OP_POP_MARK = 0x31,
    OP_GET = 0x67,
    OP_BINGET = 0x68,
    OP_LONG_BINGET = 0x6a,
    OP_PUT = 0x70,
    OP_BINPUT = 0x71,
    OP_LONG_BINPUT = 0x72,
    OP_MEMOIZE = 0x94,
    OP_EXT1 = 0x82,
    OP_EXT2 = 0x83,
    OP_EXT4 = 0x84,
    OP_GLOBAL = 0x63,
    OP_STACK_GLOBAL = 0x93,
    OP_REDUCE = 0x52,
    OP_BUILD = 0x62,
    OP_INST = 0x69,
    OP_OBJ = 0x6f,
    OP_NEWOBJ = 0x81,
    OP_NEWOBJ_EX = 0x92,
    OP_PROTO = 0x80,
    OP_STOP = 0x2e,
    OP_FRAME = 0x95,
    OP_PERSID = 0x50,
    OP_BINPERSID = 0x51,
};

#endif /* BRINERY_OPCODES_H */
